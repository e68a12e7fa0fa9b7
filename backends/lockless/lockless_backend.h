// The `lockless` backend: HAProxy's lockless pool (2.1, the seed of this
// project) with the hole in its reasoning closed. The free list, its claim
// protocol and the argument for its safety are in shared_free_list.h.
//
// Choose it when several threads share a pool and flushes or gcs must never
// hold up their allocations: Alloc() and Free() take no lock, and their only
// wait is on a claim in progress, a window of a few instructions. Do not
// choose it for the lowest single-thread cost (every operation is a locked
// instruction on one shared line: an exchange to pop, a 16-byte CAS to push)
// or where `cmpxchg16b` is missing (x86-64 only here).
// Progress: not strictly lock-free. A thread preempted inside a claim stalls
// the pool's other Alloc()/Free() calls until it runs again, exactly as
// HAProxy's POOL_BUSY does; waiters yield the CPU to let it. Flush() and Gc()
// take no lock either: the seed's flush_lock kept them exclusive, but here
// each takes its objects off the list under a claim (Gc() counting its
// surplus inside the claim), so neither can release an object another owns,
// and two Gc() calls together still never go below min_free.

#ifndef POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_
#define POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <string_view>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "backends/common/shared_free_list.h"
#include "pool/atomic.h"
#include "pool/layout.h"
#include "pool/pool_types.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

class LocklessBackend {
 public:
  static constexpr std::string_view kName = "lockless";
  static constexpr size_t kMaxObjects = SharedFreeList::kMaxObjects;

  explicit LocklessBackend(const PoolLayout& layout) : layout_(layout) {}
  // REQUIRES: no object of this pool is in use, and no call on it in flight.
  ~LocklessBackend() { Flush(); }

  LocklessBackend(const LocklessBackend&) = delete;
  LocklessBackend& operator=(const LocklessBackend&) = delete;

  // Inline, as the list's Pop() and Push() are: no call on the hot path.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Alloc() {
    void* object = list_.Pop();
    if (ABSL_PREDICT_TRUE(object != nullptr)) {
      UnpoisonObject(object, layout_.slot_size);
      return object;
    }
    return AllocFromSystem();
  }

  // REQUIRES: object came from this pool's Alloc() and is not free.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Free(void* object) {
    PoisonObject(object, layout_.slot_size);
    list_.Push(object);
  }

  void Flush();
  void Gc();
  PoolStats Stats() const;

  // fork(): the list claimed across it (pool/registry.cc), so that the child
  // inherits no claim in progress.
  void LockForFork() { list_.LockForFork(); }
  void UnlockAfterFork(bool child) { list_.UnlockAfterFork(); }

 private:
  // Obtains a new object from the system, within max_objects; nullptr (and
  // counted in failed_) at the limit or when the system has none.
  void* AllocFromSystem();

  const PoolLayout& layout_;
  SharedFreeList list_;

  // Alloc() calls that returned nullptr. relaxed: a statistic.
  alignas(64) Atomic<size_t> failed_{0};
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_
