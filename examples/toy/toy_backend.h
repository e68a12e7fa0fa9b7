// The `toy` backend: the smallest backend that keeps poolguard's whole
// contract, as a starting point for your own (tools/check_new_backend.sh
// copies it to make a throwaway one). One free list under one lock.
//
// What each part is for (pool/backend_contract.h lists the contract):
//   - every block comes from and goes back through pool/system_memory.h, so
//     failure injection, the byte limit, debug mode and the fork gate apply;
//   - free objects are poisoned, links read and written with ReadLink() and
//     WriteLink(), so AddressSanitizer sees any access to a free object;
//   - the lock is poolguard's SpinLock, whose steps are schedule points, and
//     the list's own steps carry POOLGUARD_SCHED_POINT, so the scheduled
//     fuzzer can interleave threads anywhere that matters;
//   - the system is never called with the lock held (GcAll() runs before a
//     refused request, and fork() closes the system layer while it holds
//     every pool's lock);
//   - LockForFork()/UnlockAfterFork() hold the lock across fork(), so that a
//     child never inherits a critical section in progress.

#ifndef POOLGUARD_EXAMPLES_TOY_TOY_BACKEND_H_
#define POOLGUARD_EXAMPLES_TOY_TOY_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "pool/layout.h"
#include "pool/pool_types.h"
#include "pool/sched_point.h"
#include "pool/spinlock.h"
#include "pool/system_memory.h"

namespace toy {

class ToyBackend {
 public:
  static constexpr std::string_view kName = "toy";
  static constexpr size_t kMaxObjects = SIZE_MAX;

  explicit ToyBackend(const poolguard::internal::PoolLayout& layout) : layout_(layout) {}
  ~ToyBackend() { Flush(); }

  ToyBackend(const ToyBackend&) = delete;
  ToyBackend& operator=(const ToyBackend&) = delete;

  void* Alloc() {
    {
      poolguard::internal::SpinLockHolder holder(&lock_);
      if (void* object = free_list_) {
        POOLGUARD_SCHED_POINT(kReadNext);
        free_list_ = poolguard::internal::ReadLink(object);
        --free_;
        poolguard::internal::UnpoisonObject(object, layout_.slot_size);
        return object;
      }
      if (allocated_ >= layout_.max_objects) {
        ++failed_;
        return nullptr;
      }
      ++allocated_;  // Counted before the system is asked: no overshoot.
    }
    void* object = poolguard::internal::AllocateFromSystem(layout_.slot_size, layout_.alignment);
    if (object == nullptr) {
      poolguard::internal::SpinLockHolder holder(&lock_);
      --allocated_;
      ++failed_;
    }
    return object;
  }

  void Free(void* object) {
    poolguard::internal::PoisonObject(object, layout_.slot_size);
    poolguard::internal::SpinLockHolder holder(&lock_);
    poolguard::internal::WriteLink(object, free_list_);
    POOLGUARD_SCHED_POINT(kStoreHead);
    free_list_ = object;
    ++free_;
  }

  void Flush() { Release(0); }
  void Gc() { Release(layout_.min_free); }

  poolguard::PoolStats Stats() const {
    poolguard::internal::SpinLockHolder holder(&lock_);
    poolguard::PoolStats stats;
    stats.allocated = allocated_;
    stats.free = free_;
    stats.used = allocated_ - free_;
    stats.failed = failed_;
    return stats;
  }

  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { lock_.Lock(); }
  void UnlockAfterFork(bool child) ABSL_NO_THREAD_SAFETY_ANALYSIS { lock_.Unlock(); }

 private:
  // Takes the free objects beyond `keep` off the list under the lock, and
  // releases them without it.
  void Release(size_t keep) {
    void* chain = nullptr;
    {
      poolguard::internal::SpinLockHolder holder(&lock_);
      while (free_ > keep) {
        void* object = free_list_;
        POOLGUARD_SCHED_POINT(kReadNext);
        free_list_ = poolguard::internal::ReadLink(object);
        poolguard::internal::WriteLink(object, chain);
        chain = object;
        --free_;
        --allocated_;
      }
    }
    while (chain != nullptr) {
      void* next = poolguard::internal::ReadLink(chain);
      poolguard::internal::ReleaseToSystem(chain, layout_.slot_size, layout_.alignment);
      chain = next;
    }
  }

  const poolguard::internal::PoolLayout& layout_;
  mutable poolguard::internal::SpinLock lock_;
  void* free_list_ ABSL_GUARDED_BY(lock_) = nullptr;
  size_t free_ ABSL_GUARDED_BY(lock_) = 0;
  size_t allocated_ ABSL_GUARDED_BY(lock_) = 0;
  size_t failed_ ABSL_GUARDED_BY(lock_) = 0;
};

}  // namespace toy

#endif  // POOLGUARD_EXAMPLES_TOY_TOY_BACKEND_H_
