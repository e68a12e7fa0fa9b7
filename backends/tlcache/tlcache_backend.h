// The `tlcache` backend: a bounded array cache per (thread, pool) in front of
// a shared DWCAS free list (the lockless backend's claim protocol, with batch
// push and pop). The default backend.
//
// Choose it when allocation cost matters: an Alloc() or Free() that hits the
// calling thread's cache is a few plain loads and stores, with no locked
// instruction. Do not choose it for pools whose objects mostly move between
// threads in one direction at a very high rate (every batch then crosses the
// shared list), for more than kSlots (16) live pools that all need the fast
// path (later pools use the shared list only), or where Flush()/GcAll()
// latency must be tiny: they stop every thread's cache of the pool, which
// costs a membarrier() system call (interrupts to the CPUs running this
// process). x86-64 only (cmpxchg16b).
//
// The layers:
//   - The cache: up to kCapacity (64) free objects in an array in the thread's
//     TLS, one per pool slot. Alloc() pops from it, Free() pushes to it. An
//     empty cache is refilled with up to kCapacity/2 objects from the shared
//     list in one claim; a full one gives kCapacity/2 back in one CAS, so a
//     thread alternating around the boundary does not thrash.
//   - The transfer cache: up to kTransferCapacity (128) free objects as an
//     array under a SpinLock (tcmalloc's transfer cache): a full cache gives
//     its half there and an empty one refills from there, copying pointers,
//     so objects moving from one thread to another cost no walk of links
//     (a walk is a chain of cache misses when the objects were last touched
//     on another CPU). Taken only when its count says it can serve.
//   - The shared list, for what the transfer cache cannot hold: the lockless
//     backend's list (backends/common/shared_free_list.h: a DWCAS head
//     {ptr, free:32 | allocated:32}; a pop claims the whole list by swapping
//     in kBusy, so it may walk a batch of links; only Flush()/Gc() release).
//   - Objects obtained from the system are counted in `allocated` of the
//     shared head; objects in caches and in the transfer cache are counted
//     nowhere but in their `count`s, which Stats() adds up.
//
// Who may touch a cache (the asymmetric Dekker handshake; see folly's
// asymmetricHeavyBarrier and tcmalloc's per-CPU cache drain):
//   - Its owner thread, inside a *window*: `busy = 1` (relaxed), a compiler
//     barrier (or a full fence when membarrier() is unavailable: then every
//     call takes the out-of-line path, which opens fenced windows), then
//     `open` loaded with acquire; only if it reads 1 does the owner touch
//     `count` and `objects`; the window ends with `busy = 0` (release). The
//     owner's fast path therefore has no locked instruction. `open` is 0 in
//     a cache bound to no pool, so the same load also checks the binding.
//   - A drainer (Flush(), Gc(), ~Pool, the max_objects steal), holding the
//     global cache-list lock: `open = 0`, then a heavy barrier
//     (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every thread of the
//     process runs a full barrier, so either the owner's `busy = 1` is now
//     visible to us, or the owner's later load of `open` sees 0), then waits
//     for `busy == 0` (acquire, pairs with the window's closing release
//     store), takes the contents, and sets `open = 1` again (release, pairs
//     with the owner's acquire load, which then sees the emptied cache) or,
//     in ~Pool, leaves the cache unbound and closed.
//   - While `open` is 0, the owner's call takes the slow path: it tries the
//     window once more (fenced if need be), then binds the cache under the
//     list lock (waiting there for a drainer to finish, so never inside a
//     window) and retries the cache once, or uses the shared list when it
//     cannot bind (beyond the slots, at thread exit).
//   - Binding a cache to a pool, unbinding it, and linking it into the
//     pool's list of caches happen under the global cache-list lock, by the
//     owner (bind, and at thread exit) or by ~Pool (unbind, inside the
//     handshake). Stats() reads other threads' `count` under that lock too;
//     `count` is atomic (relaxed) only so that such reads are not races.
//   - At thread exit, a thread_local destructor takes the lock and returns
//     every cache of the thread to its pool's shared list, and unlinks it,
//     so no pool's list points into dead TLS. ~Pool unbinds every cache, so
//     no cache points to a dead pool.

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
#include "pool/layout.h"
#include "pool/pool_types.h"
#include "pool/sched_point.h"
#include "pool/spinlock.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

class TlcacheBackend;

// One thread's cache for the pool bound to it.
struct TlcacheCache {
  static constexpr uint32_t kCapacity = 64;
  // Refills take, and full caches give back, this many objects.
  static constexpr uint32_t kBatch = kCapacity / 2;

  // 1 while the owner is inside a window. Written by the owner only.
  std::atomic<uint32_t> busy;
  // 1 while the cache is bound to a pool and no drainer owns its contents.
  // Written under the cache-list lock only: by the owner (bind, thread exit)
  // and by drainers.
  std::atomic<uint32_t> open;
  // Objects in `objects[0, count)`. Written by whoever owns the contents
  // (see the handshake above); read by Stats() under the cache-list lock.
  std::atomic<uint32_t> count;
  // The pool this cache serves, or nullptr. Written and read under the
  // cache-list lock only (the fast path relies on `open` instead).
  TlcacheBackend* pool;
  // The pool's list of caches; guarded by the cache-list lock.
  TlcacheCache* prev;
  TlcacheCache* next;
  void* objects[kCapacity];
};

// Per-thread caches, one per pool slot, and one more (index kTlcacheSlots)
// that is never bound, for pools beyond the slots: its `open` stays 0, so
// their calls take the slow path without a test of their own. Zero-initialized (no constructor, no
// destructor), so every access is a plain %fs-relative address: no TLS
// wrapper call. initial-exec: this code is never dlopen()ed after start-up.
inline constexpr uint32_t kTlcacheSlots = 16;
inline thread_local TlcacheCache tlcache_caches[kTlcacheSlots + 1]
    __attribute__((tls_model("initial-exec")));

// The global lock over every pool's list of caches and every cache's binding.
// A spinlock whose holder is tagged, so that in fuzz builds a waiter can tell
// a lock held by an exiting thread (which no fuzz scheduler controls) from
// one held by a scheduled thread: see tlcache_backend.cc.
class ABSL_LOCKABLE TlcacheListLock {
 public:
  static constexpr uint32_t kLiveThread = 1;
  static constexpr uint32_t kExitingThread = 2;

  void Lock(uint32_t holder = kLiveThread) ABSL_EXCLUSIVE_LOCK_FUNCTION();
  void Unlock() ABSL_UNLOCK_FUNCTION();

 private:
  std::atomic<uint32_t> word_{0};
};

extern TlcacheListLock tlcache_list_lock;

class TlcacheBackend {
 public:
  static constexpr std::string_view kName = "tlcache";
  // The counts of the shared list have 32 bits each.
  static constexpr size_t kMaxObjects = SharedFreeList::kMaxObjects;

  explicit TlcacheBackend(const PoolLayout& layout);
  // REQUIRES: no object of this pool is in use, and no call on it in flight.
  ~TlcacheBackend();

  TlcacheBackend(const TlcacheBackend&) = delete;
  TlcacheBackend& operator=(const TlcacheBackend&) = delete;

  // Always inlined (into Pool::Alloc() and its callers): the hit path is a
  // dozen instructions; the misses call out of line.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Alloc() {
    TlcacheCache& cache = FastPathCache();
    if (ABSL_PREDICT_TRUE(OpenWindow(cache, /*fence=*/false))) {
      void* object = PopFromCache(cache);
      if (ABSL_PREDICT_TRUE(object != nullptr)) {
        CloseWindow(cache);
        return object;
      }
      return RefillAndClose(cache);
    }
    CloseWindow(cache);
    return AllocSlow();
  }

  // REQUIRES: object came from this pool's Alloc() and is not free.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Free(void* object) {
    PoisonObject(object, layout_.slot_size);
    TlcacheCache& cache = FastPathCache();
    if (ABSL_PREDICT_TRUE(OpenWindow(cache, /*fence=*/false))) {
      FreeInWindow(cache, object);
      CloseWindow(cache);
      return;
    }
    CloseWindow(cache);
    FreeSlow(object);
  }

  void Flush() ABSL_LOCKS_EXCLUDED(tlcache_list_lock);
  void Gc() ABSL_LOCKS_EXCLUDED(tlcache_list_lock);
  PoolStats Stats() const ABSL_LOCKS_EXCLUDED(tlcache_list_lock);

  // Called at thread exit (tlcache_backend.cc): gives `cache` back.
  void ReturnCacheAtThreadExit(TlcacheCache& cache)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tlcache_list_lock);

 private:
  // The answer of AllocFromSystem()'s callers when max_objects are
  // allocated: the caller tries AllocAtLimit(). Never an object address.
  static inline void* const kAtLimit = reinterpret_cast<void*>(uintptr_t{2});
  // Refill()'s answer when neither the transfer cache nor the shared list has
  // an object: the caller closes its window, then calls
  // AllocFromSystemOrLimit(). Never an object address.
  static inline void* const kNeedSystem = reinterpret_cast<void*>(uintptr_t{3});

  // The calling thread's cache that Alloc() and Free() try first: this
  // pool's slot, or the never-bound cache when the pool has no slot or
  // windows need a fence (then every call goes to the slow path, which opens
  // fenced windows on the slot's cache).
  ABSL_ATTRIBUTE_ALWAYS_INLINE TlcacheCache& FastPathCache() const {
    return *reinterpret_cast<TlcacheCache*>(reinterpret_cast<char*>(tlcache_caches) +
                                            fast_path_offset_);
  }

  // Opens the owner's window on `cache`; true when the owner may use it (it
  // is bound, to this pool since it is this pool's slot, and no drainer owns
  // it). The caller closes the window in either case. `fence`: no
  // membarrier() on this system, so the owner's side needs a full fence.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static bool OpenWindow(TlcacheCache& cache, bool fence) {
    POOLGUARD_SCHED_POINT(kStoreHead);
    // relaxed: ordered before the load of `open` below by the barrier.
    cache.busy.store(1, std::memory_order_relaxed);
    if (fence) {
      // No membarrier(): a full fence here pairs with the drainer's.
      std::atomic_thread_fence(std::memory_order_seq_cst);
    } else {
      // The compiler must not sink the store below the load; the CPU's
      // reordering is undone by the drainer's membarrier().
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    POOLGUARD_SCHED_POINT(kLoadHead);
    // acquire: pairs with the drainer's release store of open = 1, so a
    // drain that ended before this window is visible (count, objects).
    return cache.open.load(std::memory_order_acquire) != 0;
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE static void CloseWindow(TlcacheCache& cache) {
    POOLGUARD_SCHED_POINT(kStoreHead);
    // release: pairs with the drainer's acquire load of busy; everything
    // this window did to the cache happens before the drainer takes it.
    cache.busy.store(0, std::memory_order_release);
  }

  // Inside an open window: an object from the cache, or nullptr if it is
  // empty.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* PopFromCache(TlcacheCache& cache) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_FALSE(n == 0)) return nullptr;
    // (Fuzz builds: a drainer may try to run here, inside the window.)
    POOLGUARD_SCHED_POINT(kReadNext);
    void* object = cache.objects[n - 1];
    cache.count.store(n - 1, std::memory_order_relaxed);
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }

  // Inside an open window: `object` into the cache, half of which goes back
  // to the shared level when it is full.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FreeInWindow(TlcacheCache& cache, void* object) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_FALSE(n == TlcacheCache::kCapacity)) {
      GiveBackHalf(cache, object);
      return;
    }
    POOLGUARD_SCHED_POINT(kStoreHead);
    cache.objects[n] = object;
    cache.count.store(n + 1, std::memory_order_relaxed);
  }

  // Inside an open window, cache empty: Refill(), close the window, and ask
  // the system if the refill found nothing.
  ABSL_ATTRIBUTE_NOINLINE void* RefillAndClose(TlcacheCache& cache);
  // Inside a window, cache empty: refills up to kBatch objects from the
  // transfer cache or the shared list and returns one, or kNeedSystem. It
  // never asks the system: that may run GcAll() (pool/limits.h), whose Gc()
  // of this pool waits for every window of it to close, this one included.
  void* Refill(TlcacheCache& cache);
  // Outside any window: a new object from the system, or nullptr (no memory,
  // counted in failed), or what AllocAtLimit() gives at max_objects.
  void* AllocFromSystemOrLimit() ABSL_LOCKS_EXCLUDED(tlcache_list_lock);
  // Inside a window, cache full: gives kBatch objects to the shared list and
  // keeps `object`.
  void GiveBackHalf(TlcacheCache& cache, void* object);
  // Without a usable cache: binds one and retries, or uses the shared list.
  void* AllocSlow();
  void FreeSlow(void* object);
  // The shared list alone, then the system; kAtLimit at max_objects.
  void* AllocShared();
  // max_objects are allocated: take back every cache's objects, then retry
  // the shared list once.
  void* AllocAtLimit() ABSL_LOCKS_EXCLUDED(tlcache_list_lock);
  // Binds the calling thread's cache of slot_ to this pool (if unbound and
  // the thread is not exiting); true when it is bound now.
  bool BindCache(TlcacheCache& cache) ABSL_LOCKS_EXCLUDED(tlcache_list_lock);

  // Takes every cache's contents into the shared list (the handshake above);
  // with `unbind`, also unbinds and unlinks every cache.
  void DrainCaches(bool unbind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tlcache_list_lock);
  // Moves a cache's contents (owned by the caller) to the shared list.
  void EmptyCache(TlcacheCache& cache);
  // Takes up to `want` objects from the transfer cache into out[].
  size_t TakeFromTransfer(void** out, size_t want) ABSL_LOCKS_EXCLUDED(transfer_lock_);
  // Stores kBatch objects in the transfer cache if it has room.
  bool GiveToTransfer(void* const* objects) ABSL_LOCKS_EXCLUDED(transfer_lock_);
  // Moves the transfer cache's objects to the shared list (Flush/Gc/~Pool).
  void EmptyTransfer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tlcache_list_lock)
      ABSL_LOCKS_EXCLUDED(transfer_lock_);

  // Reserves and obtains one object; nullptr and *at_limit when max_objects
  // are allocated, nullptr alone when the system has no memory.
  void* AllocFromSystem(bool* at_limit);
  void FlushShared() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tlcache_list_lock);
  void GcShared() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tlcache_list_lock);

  const PoolLayout& layout_;
  // This pool's index in tlcache_caches, or kTlcacheSlots (the never-bound
  // cache) when all slots are taken: then every call uses the shared list.
  // Fixed for the pool's life.
  uint32_t slot_ = kTlcacheSlots;
  // No membarrier() on this system: windows use a full fence. Fixed.
  bool owner_fence_ = false;
  // The byte offset in tlcache_caches of FastPathCache(). Fixed.
  uint32_t fast_path_offset_ = kTlcacheSlots * sizeof(TlcacheCache);

  // The caches bound to this pool.
  TlcacheCache* first_cache_ ABSL_GUARDED_BY(tlcache_list_lock) = nullptr;

  // The shared level (backends/common/shared_free_list.h): objects beyond
  // the caches and the transfer cache, and the counts of the pool.
  SharedFreeList list_;
  // Alloc() calls that returned nullptr. relaxed: a statistic.
  alignas(64) std::atomic<size_t> failed_{0};

  // The transfer cache. Guards transfer_ and writes of transfer_count_.
  static constexpr size_t kTransferCapacity = 4 * TlcacheCache::kBatch;
  alignas(64) mutable SpinLock transfer_lock_;
  // Objects in transfer_[0, count). Written under transfer_lock_; read
  // without it (relaxed) as a hint, and by Stats().
  std::atomic<size_t> transfer_count_{0};
  void* transfer_[kTransferCapacity] ABSL_GUARDED_BY(transfer_lock_);
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_TLCACHE_BACKEND_H_
