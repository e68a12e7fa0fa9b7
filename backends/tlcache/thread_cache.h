// Thread caches: one thread's cache of free objects for one pool, the
// owner's window and the drainer's handshake around it, and the registry
// that binds caches to threads and takes them back when a thread exits (in
// any phase of its exit), forks, or asks (ReleaseCallingThreadCaches()).
//
// A pool that wants thread caches derives from CacheSet and says, in
// TakeBack(), where the contents of a cache go. CacheSet::Mine() is the hot
// path: one load of a thread-local index and one load from the pool, no
// locked instruction, no TLS wrapper call.
//
// Who may touch a cache (the asymmetric Dekker handshake; heavy_barrier.h):
//   - Its owner thread, inside a *window*: busy = 1 (relaxed), a compiler
//     barrier, then `open` loaded with acquire; only if it reads kCacheOpen
//     does the owner touch count, capacity and objects. A cache opened
//     kCacheOpenFenced (membarrier() unavailable or failed) needs a full
//     fence first (OpenFencedWindow()). The window ends with busy = 0
//     (release).
//   - A drainer (Flush(), Gc(), the max_objects steal, ~Pool, fork),
//     holding the registry lock: open = kCacheClosed, then HeavyBarrier()
//     (either the owner's busy = 1 is now visible to us, or its later load
//     of open sees kCacheClosed), then waits for busy == 0 (acquire, pairs
//     with the window's closing store), takes the contents, and reopens
//     (release, pairs with the owner's acquire load of open) or unbinds.
//   - Binding, unbinding, linking into a thread's list, and the thread
//     indexes: under the registry lock, by the owner, a drainer or ~Pool.
//
// Caches live in memory from the system memory layer (counted in
// SystemBytesInUse(), refused like any request under failure injection or
// the byte limit: then the call is served by the pool's shared level), never
// in TLS: a cache whose thread died without giving it back is still valid
// memory, reachable from its pool, whose drains take its objects. No pool's
// list ever points into dead TLS.
//
// Thread exit: the first bind of a thread arms a pthread key whose
// destructor gives back every cache of the thread and frees its index.
// glibc runs key destructors after C++ thread_local destructors, in rounds
// (up to PTHREAD_DESTRUCTOR_ITERATIONS) while values get set again, so a
// thread whose first pool call runs in a thread_local destructor or a key
// destructor still has its cache given back. After the hook ran, the thread
// never binds again: its remaining calls use the shared level. Only a thread
// whose first pool call runs in the very last round of key destructors
// keeps its cache and index until its pools are destroyed (the cache's
// objects are still taken back by every Flush() and Gc()), unless it calls
// ReleaseThreadCaches() (pool/pool.h): glibc runs no round after that one,
// and no thread can tell that it runs in it.
//
// Memory: a thread keeps, per pool it used, one cache (48 bytes plus 8 per
// slot, rounded up to 64: 576 bytes for the initial 64 slots) holding up to
// `capacity` free objects; see TlcacheBackend for how capacity adapts.

#ifndef POOLGUARD_BACKENDS_TLCACHE_THREAD_CACHE_H_
#define POOLGUARD_BACKENDS_TLCACHE_THREAD_CACHE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "pool/atomic.h"
#include "pool/sched_point.h"
#include "pool/spinlock.h"

namespace poolguard::internal {

class CacheSet;

// ThreadCache::open.
inline constexpr uint32_t kCacheClosed = 0;      // a drainer owns the contents, or unbound
inline constexpr uint32_t kCacheOpen = 1;        // the owner may use it (compiler barrier)
inline constexpr uint32_t kCacheOpenFenced = 2;  // the owner may use it after a full fence

// Threads that can hold caches at once (index 0 means "none"); a thread
// beyond them uses the shared level until an index is free again. A build
// may lower it with POOLGUARD_MAX_CACHE_THREADS: the scheduled fuzz variant
// does (variants.bzl), so that its programs of 2 to 4 threads run out of
// indexes and the path beyond the limit runs too.
#if defined(POOLGUARD_MAX_CACHE_THREADS)
inline constexpr uint32_t kMaxCacheThreads = POOLGUARD_MAX_CACHE_THREADS;  // at most 65536
#else
inline constexpr uint32_t kMaxCacheThreads = 256;
#endif

// One thread's cache for one pool, in one block from the system (64-byte
// aligned): the header the hot path reads (24 bytes), then `slots` object
// pointers, then the links only the registry uses. So the header and the
// first five slots share one cache line: with many pools used in turn, a hit
// touches one line of the cache, not two.
struct ThreadCache {
  // 1 while the owner is inside a window. Written by the owner only.
  Atomic<uint32_t> busy;
  // kCacheClosed / kCacheOpen / kCacheOpenFenced. Written under the
  // registry lock only; read by the owner in its windows.
  Atomic<uint32_t> open;
  // Objects in objects()[0, count). Written by whoever owns the contents (the
  // owner inside a window, a drainer between close and reopen); read by
  // Stats() under the registry lock: atomic (relaxed) only so that such reads
  // are not races.
  Atomic<uint32_t> count;
  // How many objects the cache holds before it gives half back: at most
  // `slots`. Same owners as count (plain: only they read it).
  uint32_t capacity;
  // 1 if the cache refilled since it last gave objects back; the pool uses
  // it to tell a working set larger than the cache from a one-way flow.
  // Same owners as count.
  uint32_t refilled;
  // Fixed when bound.
  uint32_t slots;

  // What the registry keeps of a cache, after its slots.
  struct Links {
    // The pool this cache serves. Fixed when bound.
    CacheSet* set;
    // The next cache of the same thread (the registry keeps each thread's
    // list by index); under the registry lock.
    ThreadCache* next_of_thread;
    // Fixed when bound.
    uint32_t thread_index;
  };

  // The object slots, right after the header (no pointer to load).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void** objects() { return reinterpret_cast<void**>(this + 1); }
  Links& links() { return *reinterpret_cast<Links*>(objects() + slots); }

  // The block's alignment, and the bytes a cache of `slots` slots takes from
  // the system (a multiple of the alignment, as AllocateFromSystem()
  // requires).
  static constexpr size_t kAlignment = 64;
  static size_t BytesFor(uint32_t slots) {
    return (sizeof(ThreadCache) + slots * sizeof(void*) + sizeof(Links) + kAlignment - 1) &
           ~(kAlignment - 1);
  }
};
static_assert(sizeof(ThreadCache) == 24, "the header and the first slots share a line");
static_assert(sizeof(ThreadCache) % alignof(ThreadCache::Links) == 0);

// What a thread knows about itself, in TLS. Zero-initialized, no
// constructor or destructor: every access is a plain %fs-relative address.
// initial-exec: this code is never dlopen()ed after start-up. Nothing
// outside the thread points here (a thread's list of caches is kept by its
// index, in the registry), so a thread that dies leaves nothing pointing
// into its TLS.
struct CacheThread {
  // 0 until the thread first binds a cache; then its index, which the pools'
  // by-thread tables are indexed with. Written by the thread itself (under
  // the registry lock), and cleared by its exit hook.
  uint32_t index;
  // Set by the exit hook: the thread never binds again.
  uint32_t exited;
};
inline thread_local CacheThread tl_cache_thread __attribute__((tls_model("initial-exec")));

// The lock over every binding, drain, thread index and thread list. Ordered
// after the pool registry's lock and before each pool's own locks (the fork
// handlers take them in that order: pool/registry.cc).
extern SpinLock cache_registry_lock;

// The owner's side of the handshake. Returns true when the cache is open for
// unfenced windows; otherwise the owner must try OpenFencedWindow() or close
// the window. Either way, the caller closes the window it opened.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool OpenWindow(ThreadCache& cache) {
  POOLGUARD_SCHED_POINT(kStoreHead);
  // relaxed: ordered before the load of `open` below by the drainer's
  // HeavyBarrier() (or, for fenced caches, by OpenFencedWindow()'s fence).
  cache.busy.store(1, std::memory_order_relaxed);
  // The compiler must not sink the store below the load; the CPU's
  // reordering is what HeavyBarrier() undoes.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  POOLGUARD_SCHED_POINT(kLoadHead);
  // acquire: pairs with the drainer's release store that reopened the cache,
  // so a drain that ended before this window is visible (count, objects).
  return cache.open.load(std::memory_order_acquire) == kCacheOpen;
}

// After OpenWindow() returned false, inside the same window: true if the
// cache is open for fenced windows, after the owner's full fence.
bool OpenFencedWindow(ThreadCache& cache);

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void CloseWindow(ThreadCache& cache) {
  POOLGUARD_SCHED_POINT(kStoreHead);
  // release: pairs with the drainer's acquire load of busy; everything this
  // window did to the cache happens before the drainer takes it.
  cache.busy.store(0, std::memory_order_release);
  // A drainer waiting for this window may take the cache from here on, so a
  // step misplaced after the close (a store that belongs inside) is a step
  // a schedule can put a drainer in front of.
  POOLGUARD_SCHED_POINT(kStoreHead);
}

// A pool's caches, one per thread index. The pool derives from it.
class CacheSet {
 public:
  CacheSet();
  // REQUIRES: UnbindAll() ran (the derived destructor calls it).
  virtual ~CacheSet();

  CacheSet(const CacheSet&) = delete;
  CacheSet& operator=(const CacheSet&) = delete;

  // The calling thread's cache, or nullptr (none bound yet, no index, or the
  // thread exited). The hot path. relaxed: the slot is written by this
  // thread (bind, exit), or under the registry lock by ~Pool and the fork
  // child, when no call of this thread on this pool is in flight.
  ABSL_ATTRIBUTE_ALWAYS_INLINE ThreadCache* Mine() const {
    return by_thread_[tl_cache_thread.index].load(std::memory_order_relaxed);
  }

  // Binds a cache of `slots` slots and `capacity` (<= slots) for the calling
  // thread, open and empty. nullptr when the thread cannot have one: it is
  // exiting, all kMaxCacheThreads indexes are taken, or the system refused
  // the memory. Asks the system outside the registry lock.
  // REQUIRES: the calling thread has no cache in this set, and is inside no
  // window.
  ThreadCache* Bind(uint32_t slots, uint32_t capacity) ABSL_LOCKS_EXCLUDED(cache_registry_lock);

  // Replaces the calling thread's cache with a bigger one of `slots` slots,
  // keeping its contents; returns it, or the old one if the system refused
  // the memory. REQUIRES: `cache` is the caller's, outside any window.
  ThreadCache* Grow(ThreadCache* cache, uint32_t slots, uint32_t capacity)
      ABSL_LOCKS_EXCLUDED(cache_registry_lock);

  // Takes every cache's contents (TakeBack() for each) and reopens the
  // caches; with `capacity` != 0 also lowers each one's capacity to it.
  void DrainAll(uint32_t capacity) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock);

  // ~Pool: takes every cache's contents and unbinds them; returns the
  // caches, now nobody's, linked by next_of_thread, for FreeCaches() after
  // the lock is released.
  ThreadCache* UnbindAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock);

  // Objects in the caches right now (exact when the pool is quiescent).
  size_t CachedObjects() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock);

  // Releases caches returned by UnbindAll() to the system. Outside the lock.
  static void FreeCaches(ThreadCache* caches) ABSL_LOCKS_EXCLUDED(cache_registry_lock);

  // Gives back every cache of the calling thread (TakeBack(), unbind, free)
  // and its index, as its exit does, but the thread may bind again (with a
  // new index) on its next call; its exit then has nothing to do unless it
  // did. For ReleaseThreadCaches() (pool/pool.h).
  static void ReleaseCallingThreadCaches() ABSL_LOCKS_EXCLUDED(cache_registry_lock);

  // fork(), in the handlers' order (pool/registry.cc): the registry lock,
  // then every cache of every set closed with one barrier and idle; after
  // the fork, in the parent every cache reopened; in the child the caches of
  // the threads that are gone taken back and freed, their indexes free
  // again, and the forking thread's caches reopened; then the lock released.
  static void LockAllForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  static void UnlockAllAfterFork(bool child) ABSL_NO_THREAD_SAFETY_ANALYSIS;

 protected:
  // Takes the contents of `cache` (which the caller owns: a drainer, or the
  // owner at exit) into the pool's shared levels, leaving count == 0.
  // Called under the registry lock; must not ask the system for memory or
  // give any back.
  virtual void TakeBack(ThreadCache& cache) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) = 0;

 private:
  friend struct CacheRegistryAccess;

  // Closes every cache of this set (open = kCacheClosed); false if it has
  // none.
  bool CloseAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock);

  // Indexed by thread index; [0] is always nullptr. Written under the
  // registry lock. (A std::array: builds with libstdc++'s assertions, the
  // scheduled fuzz variant's among them, check every index; UBSan checks
  // none of an array of class type.)
  std::array<Atomic<ThreadCache*>, kMaxCacheThreads> by_thread_;
  // Every live set, for the fork handlers and the switch to fenced windows;
  // under the registry lock.
  CacheSet* prev_set_ = nullptr;
  CacheSet* next_set_ = nullptr;
};

// Tests: the thread index of the calling thread (0: none), and how many are
// taken.
uint32_t CacheThreadIndexForTesting();
uint32_t CacheThreadsInUseForTesting();

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_THREAD_CACHE_H_
