// TransferCache: free objects moving between threads, as an array of
// pointers under a spinlock (tcmalloc's transfer cache). A thread cache
// that is full gives a batch here, one that is empty takes one, copying
// pointers: an object freed on one CPU and allocated on another costs no
// walk of links (a walk is a chain of cache misses, each object last
// touched on the other CPU), and the shared list's claim is left to what the
// transfer cache cannot hold.
//
// Blocking: the lock is held for a memcpy of at most capacity() pointers.
// Objects in the transfer cache are free objects of the pool (Stats() counts
// them), poisoned under ASan; the array is the only place they are named.

#ifndef POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_
#define POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_

#include <atomic>
#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "pool/atomic.h"
#include "pool/spinlock.h"

namespace poolguard::internal {

class TransferCache {
 public:
  // The most pointers one can hold. TlcacheBackend gives each pool room for
  // two of its largest batches (half its largest thread cache each).
  static constexpr size_t kMaxCapacity = 1024;

  // The slots live in a block of their own from the system memory layer,
  // obtained on the first Reserve(): a pool whose objects never move between
  // threads never pays for it, and thousands of pools stay small and close
  // together (every cache hit reads a line of its pool). Until then, or if
  // the system refused the block, the transfer cache holds nothing (Give()
  // refuses).
  // REQUIRES: 0 < capacity <= kMaxCapacity.
  explicit TransferCache(size_t capacity);
  ~TransferCache();
  TransferCache(const TransferCache&) = delete;
  TransferCache& operator=(const TransferCache&) = delete;

  // Takes up to `want` objects into out[]; returns how many (0: empty). The
  // most recently given first (they are the likeliest to be in a CPU cache).
  size_t Take(void** out, size_t want) ABSL_LOCKS_EXCLUDED(lock_);

  // Stores the `n` objects of objects[] if they all fit; returns false (and
  // stores none) otherwise.
  bool Give(void* const* objects, size_t n) ABSL_LOCKS_EXCLUDED(lock_);

  // Takes every object into out[] (room for kMaxCapacity); returns how many.
  size_t TakeAll(void** out) ABSL_LOCKS_EXCLUDED(lock_);

  // Objects held, as a hint (relaxed): exact when nothing runs.
  size_t count() const { return count_.load(std::memory_order_relaxed); }
  // How many it can hold now: 0 before Reserve() succeeded. relaxed: a
  // hint; Give() reads the slots under the lock.
  size_t capacity() const {
    return slots_.load(std::memory_order_relaxed) == nullptr ? 0 : capacity_;
  }

  // Obtains the slots from the system if they are not there yet; true once
  // they are. Asks the system at most once (a refusal is final), outside any
  // lock. REQUIRES: the caller holds no lock and is in no thread cache's
  // window (the system layer may run GcAll()).
  bool Reserve() ABSL_LOCKS_EXCLUDED(lock_);
  // Whether a Reserve() asked already (relaxed: a hint; Reserve() decides).
  bool reserve_tried() const { return reserve_tried_.load(std::memory_order_relaxed); }

  // fork(): held across it, so that the child inherits no copy in progress.
  void LockForFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(lock_) { lock_.Lock(); }
  void UnlockAfterFork() ABSL_UNLOCK_FUNCTION(lock_) { lock_.Unlock(); }

 private:
  SpinLock lock_;
  // Objects in slots_[0, count_). Written under lock_; read without it
  // (relaxed) as a hint for whether taking the lock can help, and by Stats().
  Atomic<size_t> count_{0};
  const size_t capacity_;
  // capacity_ pointers, or nullptr until Reserve(). Set once, under lock_;
  // read under lock_ by Give()/Take()/TakeAll(), relaxed as a hint outside.
  Atomic<void**> slots_{nullptr};
  // Set by the first Reserve() that asked the system (it asks only once).
  Atomic<bool> reserve_tried_{false};
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_
