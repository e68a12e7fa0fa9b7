#include "backends/tlcache/thread_cache.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "backends/tlcache/heavy_barrier.h"
#include "pool/atomic.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

ABSL_CONST_INIT SpinLock cache_registry_lock;

// The registry's state, all under cache_registry_lock.
struct CacheRegistryAccess {
  // Thread indexes: 1 .. next_fresh - 1 have been handed out; the free ones
  // among them are in free_indexes[0, free_count).
  static inline uint32_t next_fresh ABSL_GUARDED_BY(cache_registry_lock) = 1;
  static inline uint32_t free_count ABSL_GUARDED_BY(cache_registry_lock) = 0;
  static inline uint16_t free_indexes[kMaxCacheThreads] ABSL_GUARDED_BY(cache_registry_lock) = {};
  // Each thread index's caches, linked by next_of_thread.
  static inline ThreadCache* thread_caches[kMaxCacheThreads] ABSL_GUARDED_BY(
      cache_registry_lock) = {};
  // Every live CacheSet.
  static inline CacheSet* first_set ABSL_GUARDED_BY(cache_registry_lock) = nullptr;

  static uint32_t AllocateIndex() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    if (free_count > 0) return free_indexes[--free_count];
    if (next_fresh < kMaxCacheThreads) return next_fresh++;
    // (thread_cache_test runs out of indexes, and so do the scheduled
    // fuzzer's programs: that variant has only a few.)
    return 0;
  }

  static void FreeIndex(uint32_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    free_indexes[free_count++] = static_cast<uint16_t>(index);
  }

  static void Unlink(ThreadCache* cache) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    for (ThreadCache** link = &thread_caches[cache->links().thread_index]; *link != nullptr;
         link = &(*link)->links().next_of_thread) {
      if (*link == cache) {
        *link = cache->links().next_of_thread;
        cache->links().next_of_thread = nullptr;
        return;
      }
    }
  }

  static uint32_t ReopenValue() { return OwnersMustFence() ? kCacheOpenFenced : kCacheOpen; }

  // The drainer's barrier (heavy_barrier.h), including the one-time switch
  // to fenced windows: every cache still open for unfenced windows is marked
  // fenced before the fallback barrier, so that every window is either
  // fenced or opened before that barrier (and covered by it).
  static void Barrier() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    BarrierOrSwitch();
    AssertNoUnfencedCacheWhileFenced();
  }

  static void BarrierOrSwitch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
#if defined(POOLGUARD_MUTANT_DRAIN_SKIPS_HEAVY_BARRIER)
    // SEEDED BUG (fuzz/mutants/README.md): in membarrier mode the drainer
    // goes from closing the caches to reading the owners' busy flags with no
    // barrier between: its stores of `open` may still sit in its store
    // buffer while it loads, and an owner's busy = 1 in the owner's (Dekker
    // without the fence). Every interleaving of the two sides is correct;
    // only the scheduled executor's store buffers show it.
    static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
    if (!InFencedMode()) return;
#endif
    if (HeavyBarrier() == HeavyBarrierResult::kDone) return;
    for (CacheSet* set = first_set; set != nullptr; set = set->next_set_) {
      for (uint32_t i = 1; i < next_fresh; ++i) {
        ThreadCache* cache = set->by_thread_[i].load(std::memory_order_relaxed);
        if (cache == nullptr) continue;
        uint32_t open = kCacheOpen;
        // relaxed: FallbackBarrier() below publishes it to every owner.
        cache->open.compare_exchange_strong(open, kCacheOpenFenced, std::memory_order_relaxed);
      }
    }
    FallbackBarrier();
  }

  // What the switch promises, once a drain's barrier is done: in fenced
  // mode no cache of any pool is open for unfenced windows (those opened
  // before the switch were marked; later ones open fenced). A slip there
  // shows otherwise only as a store-buffering race, which no interleaving
  // test can force, so builds with assertions (the fuzz builds among them)
  // check it; each drain then walks every pool's caches once more.
  static void AssertNoUnfencedCacheWhileFenced()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
#if !defined(NDEBUG)
    if (!InFencedMode()) return;
    for (CacheSet* set = first_set; set != nullptr; set = set->next_set_) {
      for (uint32_t i = 1; i < next_fresh; ++i) {
        const ThreadCache* cache = set->by_thread_[i].load(std::memory_order_relaxed);
        if (cache != nullptr && cache->open.load(std::memory_order_relaxed) == kCacheOpen) {
          // coverage-exempt-begin: only a broken switch gets here.
          std::fprintf(stderr,
                       "poolguard: tlcache: thread index %u's cache is open for unfenced "
                       "windows after a drain's barrier in fenced mode\n",
                       i);
          std::abort();
        }  // coverage-exempt-end
      }
    }
#endif
  }

  // Waits for the owner's window in progress, if any, to close. Owners never
  // wait inside a window (for this lock or anything a drainer holds), so
  // this ends.
  static void WaitIdle(ThreadCache& cache) {
    Backoff backoff;
    for (;;) {
      POOLGUARD_SCHED_POINT(kLoadHead);
      // acquire: pairs with CloseWindow()'s release; the owner's writes to
      // the cache happen before ours.
      if (cache.busy.load(std::memory_order_acquire) == 0) return;
      backoff.Wait();
    }
  }

  static void Reopen(ThreadCache& cache) {
    POOLGUARD_SCHED_POINT(kStoreHead);
    // release: pairs with the owner's acquire load of open; it then sees
    // what the drainer did to the cache.
    cache.open.store(ReopenValue(), std::memory_order_release);
  }

  // Takes back and unbinds every cache of thread `index` (the caller owns
  // their contents); returns them linked by next_of_thread, for FreeCaches().
  static ThreadCache* TakeBackThread(uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    ThreadCache* caches = thread_caches[index];
    thread_caches[index] = nullptr;
    for (ThreadCache* cache = caches; cache != nullptr; cache = cache->links().next_of_thread) {
      cache->links().set->TakeBack(*cache);
#if defined(POOLGUARD_MUTANT_EXIT_LEAVES_CACHE_BOUND)
      // SEEDED BUG (fuzz/mutants/README.md): the caches are freed, but each
      // pool's slot for this index still points at them; the next thread
      // given the index uses freed memory.
      static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
#else
      cache->links().set->by_thread_[index].store(nullptr, std::memory_order_relaxed);
#endif
    }
    return caches;
  }
};

namespace {

using Registry = CacheRegistryAccess;

// The calling thread's exit hook: a pthread key destructor, armed by the
// thread's first bind. Gives back every cache and the index.
void OnThreadExit(void*) {
  CacheThread& me = tl_cache_thread;
  // From here on the thread uses the shared levels only: a later bind could
  // arm the key again, but no further round of key destructors is promised.
  me.exited = 1;
  // Nothing to give back (ReleaseCallingThreadCaches() did): take no lock.
  if (me.index == 0) return;
  ThreadCache* caches;
  {
    SpinLockHolder holder(&cache_registry_lock);
    caches = Registry::TakeBackThread(me.index);
    if (me.index != 0) Registry::FreeIndex(me.index);
    me.index = 0;
  }
  CacheSet::FreeCaches(caches);
}

pthread_key_t ExitKey() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    // No key left means no exit hook: then no thread may bind (see Bind()).
    if (pthread_key_create(&k, &OnThreadExit) != 0) return static_cast<pthread_key_t>(-1);
    return k;
  }();
  return key;
}

}  // namespace

bool OpenFencedWindow(ThreadCache& cache) {
  // relaxed: only a hint of which path to take; the load after the fence
  // decides.
  if (cache.open.load(std::memory_order_relaxed) != kCacheOpenFenced) return false;
  // The owner's half of a fenced Dekker pattern: busy = 1 (already stored),
  // full fence, load open. Pairs with the drainer's fence in HeavyBarrier().
  POOLGUARD_SCHED_POINT(kFence);
  ThreadFence(std::memory_order_seq_cst);
  POOLGUARD_SCHED_POINT(kLoadHead);
  // acquire: as in OpenWindow().
  return cache.open.load(std::memory_order_acquire) != kCacheClosed;
}

CacheSet::CacheSet() {
  for (auto& slot : by_thread_) slot.store(nullptr, std::memory_order_relaxed);
  SpinLockHolder holder(&cache_registry_lock);
  next_set_ = Registry::first_set;
  if (next_set_ != nullptr) next_set_->prev_set_ = this;
  Registry::first_set = this;
}

CacheSet::~CacheSet() {
  SpinLockHolder holder(&cache_registry_lock);
  if (prev_set_ != nullptr) {
    prev_set_->next_set_ = next_set_;
  } else {
    Registry::first_set = next_set_;
  }
  if (next_set_ != nullptr) next_set_->prev_set_ = prev_set_;
}

ThreadCache* CacheSet::Bind(uint32_t slots, uint32_t capacity) {
  CacheThread& me = tl_cache_thread;
  if (me.exited != 0) return nullptr;
  if (me.index == 0) {
    // Arm the exit hook before the first index is taken (outside the lock:
    // pthread_setspecific may allocate). Arming again is harmless.
    const pthread_key_t key = ExitKey();
    // coverage-exempt-begin: glibc's keys cannot be made to run out on demand.
    if (key == static_cast<pthread_key_t>(-1) || pthread_setspecific(key, &me) != 0) {
      return nullptr;
    }
    // coverage-exempt-end
    // The index before the memory: while all kMaxCacheThreads indexes are
    // taken, the shared level serves this thread, and each of its calls is
    // refused here without a request to the system. (It keeps the index
    // even if the memory below is refused; its exit gives it back. Only this
    // thread changes me.index, so it is still set under the lock below.)
    SpinLockHolder holder(&cache_registry_lock);
    me.index = Registry::AllocateIndex();
    if (me.index == 0) return nullptr;
  }
  void* memory = AllocateFromSystem(ThreadCache::BytesFor(slots), ThreadCache::kAlignment);
  if (memory == nullptr) return nullptr;
  auto* cache = new (memory) ThreadCache{};
  cache->slots = slots;
  cache->capacity = std::min(capacity, slots);
  new (&cache->links()) ThreadCache::Links{this, nullptr, me.index};
  SpinLockHolder holder(&cache_registry_lock);
  cache->links().next_of_thread = Registry::thread_caches[me.index];
  Registry::thread_caches[me.index] = cache;
  // relaxed: only this thread's windows read it outside the lock.
  cache->open.store(Registry::ReopenValue(), std::memory_order_relaxed);
  by_thread_[me.index].store(cache, std::memory_order_relaxed);
  return cache;
}

ThreadCache* CacheSet::Grow(ThreadCache* cache, uint32_t slots, uint32_t capacity) {
  void* memory = AllocateFromSystem(ThreadCache::BytesFor(slots), ThreadCache::kAlignment);
  if (memory == nullptr) return cache;
  auto* bigger = new (memory) ThreadCache{};
  bigger->slots = slots;
  bigger->capacity = std::min(capacity, slots);
  new (&bigger->links()) ThreadCache::Links{this, nullptr, cache->links().thread_index};
  {
    SpinLockHolder holder(&cache_registry_lock);
    // Under the lock no drainer holds the cache, and its owner (us) is in no
    // window: the contents are ours to move, and the cache is open.
    const uint32_t n = cache->count.load(std::memory_order_relaxed);
    std::copy(cache->objects(), cache->objects() + n, bigger->objects());
    bigger->count.store(n, std::memory_order_relaxed);
    bigger->refilled = cache->refilled;
    bigger->open.store(cache->open.load(std::memory_order_relaxed), std::memory_order_relaxed);
    Registry::Unlink(cache);
    bigger->links().next_of_thread = Registry::thread_caches[bigger->links().thread_index];
    Registry::thread_caches[bigger->links().thread_index] = bigger;
    by_thread_[bigger->links().thread_index].store(bigger, std::memory_order_relaxed);
  }
  // Unreachable now: drainers and Stats() find caches under the lock, and
  // this thread through by_thread_.
  ReleaseToSystem(cache, ThreadCache::BytesFor(cache->slots), ThreadCache::kAlignment);
  return bigger;
}

bool CacheSet::CloseAll() {
  bool closed = false;
  for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
    ThreadCache* cache = by_thread_[i].load(std::memory_order_relaxed);
    if (cache == nullptr) continue;
    POOLGUARD_SCHED_POINT(kStoreHead);
    // relaxed: ordered before the loads of busy by Barrier().
    cache->open.store(kCacheClosed, std::memory_order_relaxed);
    closed = true;
  }
  return closed;
}

void CacheSet::DrainAll(uint32_t capacity) {
  // 1. Close every cache: from its owner's next window on, the owner
  //    bypasses it. 2. Either an owner's busy = 1 is visible to the loads
  //    below, or its load of open sees kCacheClosed (heavy_barrier.h).
  // No cache bound (the registry lock keeps it so): no owner to wait for,
  // and no barrier to pay.
#if defined(POOLGUARD_MUTANT_DRAIN_WAITS_BEFORE_CLOSING)
  // SEEDED BUG (fuzz/mutants/README.md): the handshake in the wrong order.
  // It waits for each owner to be idle and only then closes the caches, so
  // an owner that opens its window in between is never waited for.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
    if (ThreadCache* cache = by_thread_[i].load(std::memory_order_relaxed)) {
      Registry::WaitIdle(*cache);
    }
  }
#endif
  if (!CloseAll()) return;
  Registry::Barrier();
  for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
    ThreadCache* cache = by_thread_[i].load(std::memory_order_relaxed);
    if (cache == nullptr) continue;
#if defined(POOLGUARD_MUTANT_DRAIN_IGNORES_BUSY) || \
    defined(POOLGUARD_MUTANT_DRAIN_WAITS_BEFORE_CLOSING)
    // SEEDED BUG (fuzz/mutants/README.md): the drainer closes the cache but
    // does not wait for a window in progress, so it empties (and Flush()
    // releases) objects the owner is about to hand out or has just stored.
    // (drain_waits_before_closing waited above, before closing.)
    static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
#else
    // 3. Wait for a window in progress; the contents are then ours.
    Registry::WaitIdle(*cache);
#endif
    TakeBack(*cache);
    cache->refilled = 0;
    if (capacity != 0) cache->capacity = std::min(cache->capacity, capacity);
    // 4. Hand the cache back.
    Registry::Reopen(*cache);
  }
}

ThreadCache* CacheSet::UnbindAll() {
  if (!CloseAll()) return nullptr;
  Registry::Barrier();
  ThreadCache* unbound = nullptr;
  for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
    ThreadCache* cache = by_thread_[i].load(std::memory_order_relaxed);
    if (cache == nullptr) continue;
    // No call on this pool is in flight (~Pool's REQUIRES, which also
    // orders them before us); the wait costs one load, and keeps this the
    // same handshake as a drain's.
    Registry::WaitIdle(*cache);
    TakeBack(*cache);
    // Unbound caches stay closed; the owner's next call on this slot finds
    // nullptr.
    by_thread_[i].store(nullptr, std::memory_order_relaxed);
#if defined(POOLGUARD_MUTANT_DESTROY_LEAVES_CACHE_LINKED)
    // SEEDED BUG (fuzz/mutants/README.md): the cache is freed with the pool
    // but stays in its thread's list, which the thread's exit walks.
    static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
#else
    Registry::Unlink(cache);
#endif
    cache->links().next_of_thread = unbound;
    unbound = cache;
  }
  return unbound;
}

size_t CacheSet::CachedObjects() const {
  size_t cached = 0;
  for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
    const ThreadCache* cache = by_thread_[i].load(std::memory_order_relaxed);
    // relaxed: a count an owner may be changing; exact when quiescent.
    if (cache != nullptr) cached += cache->count.load(std::memory_order_relaxed);
  }
  return cached;
}

void CacheSet::FreeCaches(ThreadCache* caches) {
  while (caches != nullptr) {
    ThreadCache* next = caches->links().next_of_thread;
    ReleaseToSystem(caches, ThreadCache::BytesFor(caches->slots), ThreadCache::kAlignment);
    caches = next;
  }
}

void CacheSet::ReleaseCallingThreadCaches() {
  CacheThread& me = tl_cache_thread;
  if (me.index == 0) return;
  ThreadCache* caches;
  {
    SpinLockHolder holder(&cache_registry_lock);
    // The calling thread is in no window, and no drainer runs: the contents
    // of its caches are ours.
    caches = Registry::TakeBackThread(me.index);
    // The index goes too (the thread takes a new one if it binds again), so
    // that an exit after this takes no lock at all: a test harness that
    // gives a thread's caches back while it still controls the thread
    // leaves nothing for the uncontrolled exit to do.
    Registry::FreeIndex(me.index);
    me.index = 0;
  }
  FreeCaches(caches);
  // The exit key stays armed: its hook then only marks the thread exited,
  // so that a bind after it (in a later round of key destructors) is
  // refused. Disarming it here would let a thread that calls this and then
  // binds again only in glibc's last round keep that cache.
}

void CacheSet::LockAllForFork() {
  cache_registry_lock.Lock();
  // Every window of every cache closed and idle, with one barrier: the child
  // inherits no window in progress, and no cache an owner is using.
  bool closed = false;
  for (CacheSet* set = Registry::first_set; set != nullptr; set = set->next_set_) {
    closed |= set->CloseAll();
  }
  if (closed) Registry::Barrier();
  for (CacheSet* set = Registry::first_set; set != nullptr; set = set->next_set_) {
    for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
      if (ThreadCache* cache = set->by_thread_[i].load(std::memory_order_relaxed)) {
        Registry::WaitIdle(*cache);
      }
    }
  }
}

void CacheSet::UnlockAllAfterFork(bool child) {
  ThreadCache* gone = nullptr;
  const uint32_t mine = tl_cache_thread.index;
  if (child) {
    // Only the forking thread exists here: every other thread's caches go
    // back to their pools, and their indexes are free again.
    Registry::free_count = 0;
    for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
      if (i == mine) continue;
      ThreadCache* caches = Registry::TakeBackThread(i);
      while (caches != nullptr) {
        ThreadCache* next = caches->links().next_of_thread;
        caches->links().next_of_thread = gone;
        gone = caches;
        caches = next;
      }
      Registry::FreeIndex(i);
    }
  }
  for (CacheSet* set = Registry::first_set; set != nullptr; set = set->next_set_) {
    for (uint32_t i = 1; i < Registry::next_fresh; ++i) {
      if (ThreadCache* cache = set->by_thread_[i].load(std::memory_order_relaxed)) {
        Registry::Reopen(*cache);
      }
    }
  }
  cache_registry_lock.Unlock();
  FreeCaches(gone);
}

// coverage-exempt-begin: for tests only.
uint32_t CacheThreadIndexForTesting() { return tl_cache_thread.index; }

uint32_t CacheThreadsInUseForTesting() {
  SpinLockHolder holder(&cache_registry_lock);
  return Registry::next_fresh - 1 - Registry::free_count;
}
// coverage-exempt-end

}  // namespace poolguard::internal
