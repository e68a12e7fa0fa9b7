// The `tlcache` backend (the default): a cache of free objects per (thread,
// pool) in front of a transfer cache and the shared free list.
//
// Choose it when allocation cost matters: an Alloc() or Free() that hits the
// calling thread's cache is a few plain loads and stores, with no locked
// instruction, whatever the number of pools. Do not choose it for pools whose
// objects mostly move between threads in one direction at a very high rate
// (every batch then crosses the shared levels), or where Flush()/GcAll()
// latency must be tiny: they stop every thread's cache of the pool, which
// costs a membarrier() system call (interrupts to the CPUs running this
// process). x86-64 only (cmpxchg16b). Progress: a cache hit never waits; a
// miss waits as the lockless backend does, or for the transfer cache's lock;
// Flush()/Gc()/~Pool, binding a cache and thread exit take one global lock.
//
// The layers, each in its own file with its own test:
//   - thread_cache.h: the per-thread caches, the owner's window and the
//     drainer's handshake (with heavy_barrier.h), binding, and giving caches
//     back at thread exit, on fork and on ReleaseThreadCaches();
//   - transfer_cache.h: batches of pointers between threads;
//   - backends/common/shared_free_list.h: the lockless backend's list, for
//     what the caches and the transfer cache do not hold, and the pool's
//     counts (`allocated` in its head; objects in caches and in the transfer
//     cache are counted in their own counts, which Stats() adds up).
//
// Capacity adapts to the demand (as tcmalloc's and mimalloc's caches do): a
// cache starts with room for kInitialCacheBytes of objects (64 objects at
// most, 4 at least); when it is full and has refilled since it last gave
// objects back (a working set larger than the cache, not a one-way flow),
// it doubles, up to kMaxCacheBytes of objects (1024 objects at most, and at
// least its initial size). Otherwise a full cache gives half back and an
// empty one refills half, in one step each. Flush() and GcAll() take every
// cache's objects and lower each capacity back to the initial one.
//
// Memory an idle thread keeps, per pool it used: its cache (48 bytes plus 8
// per slot, in 64-byte units: 576 bytes at first, 8256 at the largest) and
// up to `capacity` free objects (64 KiB of them at most, or 1024 objects,
// for small objects), until its pool is flushed or gc'd, the thread exits or
// calls ReleaseThreadCaches(). Each pool also holds a transfer cache of as
// many pointers as its largest thread cache (8 KiB for small objects).

#ifndef POOLGUARD_BACKENDS_TLCACHE_TLCACHE_BACKEND_H_
#define POOLGUARD_BACKENDS_TLCACHE_TLCACHE_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "backends/common/shared_free_list.h"
#include "backends/tlcache/thread_cache.h"
#include "backends/tlcache/transfer_cache.h"
#include "pool/atomic.h"
#include "pool/layout.h"
#include "pool/pool_types.h"
#include "pool/sched_point.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

class TlcacheBackend final : public CacheSet {
 public:
  static constexpr std::string_view kName = "tlcache";
  // The counts of the shared list have 32 bits each.
  static constexpr size_t kMaxObjects = SharedFreeList::kMaxObjects;

  // Objects a new cache has room for, in bytes of objects (4 to 64 objects).
  static constexpr size_t kInitialCacheBytes = 64 << 10;
  // The most a cache grows to, in bytes of objects (its initial size to 1024
  // objects).
  static constexpr size_t kMaxCacheBytes = 64 << 10;
  static constexpr uint32_t kMaxCacheObjects = 1024;

  explicit TlcacheBackend(const PoolLayout& layout);
  // REQUIRES: no object of this pool is in use, and no call on it in flight.
  ~TlcacheBackend() override;

  TlcacheBackend(const TlcacheBackend&) = delete;
  TlcacheBackend& operator=(const TlcacheBackend&) = delete;

  // Always inlined (into Pool::Alloc() and its callers): the hit path is a
  // dozen instructions; the misses call out of line.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Alloc() {
    ThreadCache* cache = Mine();
    if (ABSL_PREDICT_TRUE(cache != nullptr)) {
      if (ABSL_PREDICT_TRUE(OpenWindow(*cache))) {
        const uint32_t n = cache->count.load(std::memory_order_relaxed);
        if (ABSL_PREDICT_TRUE(n != 0)) {
          // (Fuzz builds: a drainer may try to run here, inside the window.)
          POOLGUARD_SCHED_POINT(kReadNext);
          void* object = cache->objects()[n - 1];
          // The count a drainer reads: stored inside the window.
          POOLGUARD_SCHED_POINT(kStoreHead);
          cache->count.store(n - 1, std::memory_order_relaxed);
          CloseWindow(*cache);
          UnpoisonObject(object, layout_.slot_size);
          return object;
        }
        return RefillAndClose(*cache);
      }
      return AllocUnopened(*cache);
    }
    return AllocUnbound();
  }

  // REQUIRES: object came from this pool's Alloc() and is not free.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Free(void* object) {
    PoisonObject(object, layout_.slot_size);
    ThreadCache* cache = Mine();
    if (ABSL_PREDICT_TRUE(cache != nullptr)) {
      if (ABSL_PREDICT_TRUE(OpenWindow(*cache))) {
        const uint32_t n = cache->count.load(std::memory_order_relaxed);
        if (ABSL_PREDICT_TRUE(n < cache->capacity)) {
          POOLGUARD_SCHED_POINT(kStoreHead);
          cache->objects()[n] = object;
          POOLGUARD_SCHED_POINT(kStoreHead);  // The count, inside the window.
          cache->count.store(n + 1, std::memory_order_relaxed);
          CloseWindow(*cache);
          return;
        }
        return SpillAndClose(*cache, object);
      }
      return FreeUnopened(*cache, object);
    }
    FreeUnbound(object);
  }

  void Flush() ABSL_LOCKS_EXCLUDED(cache_registry_lock);
  void Gc() ABSL_LOCKS_EXCLUDED(cache_registry_lock);
  PoolStats Stats() const ABSL_LOCKS_EXCLUDED(cache_registry_lock);

  // The calling thread's caches of every pool go back to their pools
  // (pool/pool.h, ReleaseThreadCaches()).
  static void ReleaseThreadCaches() { CacheSet::ReleaseCallingThreadCaches(); }

  // fork() (pool/registry.cc runs these in the documented lock order): every
  // cache closed and idle, then each pool's transfer cache and shared list
  // held; after the fork, released again, and in the child the other
  // threads' caches given back.
  static void LockAllForFork() { CacheSet::LockAllForFork(); }
  static void UnlockAllAfterFork(bool child) { CacheSet::UnlockAllAfterFork(child); }
  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void UnlockAfterFork(bool child) ABSL_NO_THREAD_SAFETY_ANALYSIS;

 private:
  // Where AllocFromSystem() got, and why it failed.
  enum class SystemResult { kObject, kAtLimit, kNoMemory };
  // A refill's outcome.
  enum class RefillResult { kRefilled, kNothingShared };

  // CacheSet: a cache's contents into the shared list.
  void TakeBack(ThreadCache& cache) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock);

  // Inside an open window, cache empty: refill, close the window, and ask
  // the system if the refill found nothing.
  ABSL_ATTRIBUTE_NOINLINE void* RefillAndClose(ThreadCache& cache);
  // Inside an open window, cache empty: up to half a cache from the
  // transfer cache or the shared list. It never asks the system: that may
  // run GcAll() (pool/limits.h), whose Gc() of this pool waits for every
  // window of it to close, this one included.
  RefillResult Refill(ThreadCache& cache);
  // Inside an open window, cache full: grows the cache, or gives half back,
  // keeps `object`, and closes the window.
  ABSL_ATTRIBUTE_NOINLINE void SpillAndClose(ThreadCache& cache, void* object);
  // Inside a window OpenWindow() refused: a fenced window, or (the cache is
  // held by a drainer) the shared level. Close the window.
  ABSL_ATTRIBUTE_NOINLINE void* AllocUnopened(ThreadCache& cache);
  ABSL_ATTRIBUTE_NOINLINE void FreeUnopened(ThreadCache& cache, void* object);
  // No cache: bind one and use it, or use the shared level.
  ABSL_ATTRIBUTE_NOINLINE void* AllocUnbound();
  ABSL_ATTRIBUTE_NOINLINE void FreeUnbound(void* object);
  // Inside an open window on `cache`: the hit paths of Alloc() and Free(),
  // and what follows a miss. Close the window.
  void* AllocInWindow(ThreadCache& cache);
  void FreeInWindow(ThreadCache& cache, void* object);
  // The transfer cache, the shared list, then the system.
  void* AllocShared();
  // Outside any window: a new object from the system, or (at max_objects)
  // what AllocAtLimit() finds, or nullptr counted in failed.
  void* AllocFromSystemOrLimit();
  // Reserves one object in `allocated` and obtains it.
  SystemResult AllocFromSystem(void** object);
  // max_objects are allocated: take back every cache's objects, then retry
  // the shared level once.
  void* AllocAtLimit() ABSL_LOCKS_EXCLUDED(cache_registry_lock);
  // The transfer cache's objects into the shared list.
  void EmptyTransfer();
  // Releases a chain of objects no other thread can reach.
  void ReleaseChain(void* chain);

  const PoolLayout& layout_;
  // Fixed for the pool's life (see the file comment).
  const uint32_t initial_capacity_;
  const uint32_t max_capacity_;

  // The shared level: objects beyond the caches and the transfer cache, and
  // the counts of the pool.
  SharedFreeList list_;
  // Alloc() calls that returned nullptr. relaxed: a statistic.
  alignas(64) Atomic<size_t> failed_{0};
  alignas(64) TransferCache transfer_;
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_TLCACHE_BACKEND_H_
