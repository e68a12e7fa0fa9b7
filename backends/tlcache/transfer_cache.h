// TransferCache: free objects moving between threads, as an array of
// pointers under a spinlock (tcmalloc's transfer cache). A thread cache
// that is full gives a batch here, one that is empty takes one, copying
// pointers: an object freed on one CPU and allocated on another costs no
// walk of links (a walk is a chain of cache misses, each object last
// touched on the other CPU), and the shared list's claim is left to what the
// transfer cache cannot hold.
//
// Blocking: the lock is held for a memcpy of at most kCapacity pointers.
// Objects in the transfer cache are free objects of the pool (Stats() counts
// them), poisoned under ASan; the array is the only place they are named.

#ifndef POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_
#define POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_

#include <atomic>
#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "pool/spinlock.h"

namespace poolguard::internal {

class TransferCache {
 public:
  // Pointers it holds: room for a few batches of the largest thread cache
  // (TlcacheBackend gives back half a cache at a time).
  static constexpr size_t kCapacity = 1024;

  TransferCache() = default;
  TransferCache(const TransferCache&) = delete;
  TransferCache& operator=(const TransferCache&) = delete;

  // Takes up to `want` objects into out[]; returns how many (0: empty). The
  // most recently given first (they are the likeliest to be in a CPU cache).
  size_t Take(void** out, size_t want) ABSL_LOCKS_EXCLUDED(lock_);

  // Stores the `n` objects of objects[] if they all fit; returns false (and
  // stores none) otherwise.
  bool Give(void* const* objects, size_t n) ABSL_LOCKS_EXCLUDED(lock_);

  // Takes every object into out[] (room for kCapacity); returns how many.
  size_t TakeAll(void** out) ABSL_LOCKS_EXCLUDED(lock_);

  // Objects held, as a hint (relaxed): exact when nothing runs.
  size_t count() const { return count_.load(std::memory_order_relaxed); }

  // fork(): held across it, so that the child inherits no copy in progress.
  void LockForFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(lock_) { lock_.Lock(); }
  void UnlockAfterFork() ABSL_UNLOCK_FUNCTION(lock_) { lock_.Unlock(); }

 private:
  SpinLock lock_;
  // Objects in slots_[0, count_). Written under lock_; read without it
  // (relaxed) as a hint for whether taking the lock can help, and by Stats().
  std::atomic<size_t> count_{0};
  void* slots_[kCapacity] ABSL_GUARDED_BY(lock_);
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_TRANSFER_CACHE_H_
