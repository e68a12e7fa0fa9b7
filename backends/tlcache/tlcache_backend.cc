#include "backends/tlcache/tlcache_backend.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "pool/sched_point.h"
#include "pool/system_memory.h"

#if !defined(__x86_64__)
#error "the tlcache backend needs a 16-byte CAS; only x86-64 (cmpxchg16b) is supported"
#endif

namespace poolguard::internal {

ABSL_CONST_INIT TlcacheListLock tlcache_list_lock;

namespace {

// Which heavy barrier drainers use, chosen once (under tlcache_list_lock,
// when the first pool is created) and never changed: 0 not chosen yet,
// 1 membarrier(), 2 none (owners fence instead). relaxed: written once under
// the lock before any pool exists; read under the lock.
std::atomic<int> g_barrier_kind{0};
std::atomic<int> g_slots_used_mask{0};  // guarded by tlcache_list_lock

int ChooseBarrier() {
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0);
  if (commands >= 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
      syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0) {
    return 1;
  }
  return 2;
}

// The drainer's half of the handshake: after its stores of open = 0, before
// its loads of busy. The seq_cst fence pairs with the owner's fence (no
// membarrier) and orders our own stores before the system call.
void HeavyBarrier() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (g_barrier_kind.load(std::memory_order_relaxed) == 1) {
    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0);
  }
}

// Set by the thread-exit hook: from then on this thread uses shared lists only
// (other thread_local destructors may still free objects).
thread_local bool t_exiting = false;

// Returns every cache of the calling thread to its pool when the thread exits.
struct ThreadExitHook {
  bool armed = false;
  ~ThreadExitHook() {
    t_exiting = true;
    tlcache_list_lock.Lock(TlcacheListLock::kExitingThread);
    for (TlcacheCache& cache : tlcache_caches) {
      // Under the lock no drainer runs and no pool goes away, and this thread
      // is in no window: the cache's contents and binding are ours.
      if (cache.pool != nullptr) cache.pool->ReturnCacheAtThreadExit(cache);
    }
    tlcache_list_lock.Unlock();
  }
};
// Constructed (and its destructor registered) on a thread's first bind.
thread_local ThreadExitHook t_exit_hook;

}  // namespace

void TlcacheListLock::Lock(uint32_t holder) {
  POOLGUARD_SCHED_POINT(kLock);
  uint32_t expected = 0;
  // acquire: pairs with the release store in Unlock().
  while (!word_.compare_exchange_strong(expected, holder, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
    Backoff backoff;
#if POOLGUARD_SCHEDULE_POINTS_ENABLED
    // Fuzz builds: exiting threads' hooks run after the fuzz scheduler let go
    // of their thread, so no scheduler runs them, and a scheduled thread that
    // waits for them must not tell the scheduler "I wait" (it would report a
    // hang when every other thread has finished). When a hook holds the lock
    // it: it runs outside the scheduler and
    // will let go by itself, so wait here without a schedule point (bounded:
    // the hook may itself wait for a claim of a descheduled thread).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
#endif
    // relaxed: a hint; the CAS re-checks with acquire.
    while ((expected = word_.load(std::memory_order_relaxed)) != 0) {
#if POOLGUARD_SCHEDULE_POINTS_ENABLED
      if (expected == kExitingThread && std::chrono::steady_clock::now() < give_up) {
        sched_yield();
        continue;
      }
#endif
      backoff.Wait();
    }
    POOLGUARD_SCHED_POINT(kLock);
  }
}

void TlcacheListLock::Unlock() {
  POOLGUARD_SCHED_POINT(kUnlock);
  // release: publishes the critical section to the next Lock().
  word_.store(0, std::memory_order_release);
}

TlcacheBackend::TlcacheBackend(const PoolLayout& layout) : layout_(layout) {
  tlcache_list_lock.Lock();
  if (g_barrier_kind.load(std::memory_order_relaxed) == 0) {
    g_barrier_kind.store(ChooseBarrier(), std::memory_order_relaxed);
  }
  owner_fence_ = g_barrier_kind.load(std::memory_order_relaxed) != 1;
  const int used = g_slots_used_mask.load(std::memory_order_relaxed);
  for (uint32_t slot = 0; slot < kTlcacheSlots; ++slot) {
    if ((used & (1 << slot)) == 0) {
      g_slots_used_mask.store(used | (1 << slot), std::memory_order_relaxed);
      // Every cache of this slot is unbound: ~Pool of the slot's previous
      // pool unbound them all under this lock.
      slot_ = slot;
      break;
    }
  }
  // Fenced windows are opened out of line only, so that the inline fast
  // path has no test for them.
  if (!owner_fence_) fast_path_offset_ = slot_ * sizeof(TlcacheCache);
  tlcache_list_lock.Unlock();
}

TlcacheBackend::~TlcacheBackend() {
  tlcache_list_lock.Lock();
  // No call on this pool is in flight (REQUIRES), but the handshake is what
  // orders the owners' last windows before our reads of their caches.
  DrainCaches(/*unbind=*/true);
  if (slot_ < kTlcacheSlots) {
    g_slots_used_mask.store(g_slots_used_mask.load(std::memory_order_relaxed) & ~(1 << slot_),
                            std::memory_order_relaxed);
  }
  EmptyTransfer();
  FlushShared();
  tlcache_list_lock.Unlock();
}

// ---------------------------------------------------------------------------
// The shared level: the lockless backend's list (shared_free_list.h), and the
// system.

void* TlcacheBackend::AllocFromSystem(bool* at_limit) {
  // Reserve the object in `allocated` first, so that concurrent callers
  // cannot overshoot max_objects.
  *at_limit = !list_.ReserveAllocated(layout_.max_objects);
  if (*at_limit) return nullptr;
  void* object = AllocateFromSystem(layout_.slot_size, layout_.alignment);
  if (ABSL_PREDICT_FALSE(object == nullptr)) {
    list_.UnreserveAllocated();
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
  return object;
}

void TlcacheBackend::FlushShared() {
  // The list lock makes Flush()/Gc()/~Pool exclusive; the shared list would
  // not need it (shared_free_list.h), the caches do.
  void* object = list_.TakeAllToRelease();
  // The detached chain is ours alone.
  while (object != nullptr) {
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(object);
    POOLGUARD_SCHED_POINT(kReleaseSystem);
    ReleaseToSystem(object, layout_.slot_size, layout_.alignment);
    object = next;
  }
}

void TlcacheBackend::GcShared() {
  // Batches of the surplus above min_free, each counted under its claim.
  void* batch[TlcacheCache::kCapacity];
  size_t n;
  while ((n = list_.PopSurplusToRelease(batch, TlcacheCache::kCapacity, layout_.min_free)) != 0) {
    for (size_t i = 0; i < n; ++i) {
      POOLGUARD_SCHED_POINT(kReleaseSystem);
      ReleaseToSystem(batch[i], layout_.slot_size, layout_.alignment);
    }
  }
}

// ---------------------------------------------------------------------------
// Caches.

size_t TlcacheBackend::TakeFromTransfer(void** out, size_t want) {
  // relaxed: a hint, re-read under the lock.
  if (transfer_count_.load(std::memory_order_relaxed) == 0) return 0;
  SpinLockHolder holder(&transfer_lock_);
  const size_t count = transfer_count_.load(std::memory_order_relaxed);
  const size_t n = std::min(want, count);
  std::memcpy(out, transfer_ + (count - n), n * sizeof(void*));
  transfer_count_.store(count - n, std::memory_order_relaxed);
  return n;
}

bool TlcacheBackend::GiveToTransfer(void* const* objects) {
  constexpr size_t kBatch = TlcacheCache::kBatch;
  // relaxed: a hint, re-read under the lock.
  if (transfer_count_.load(std::memory_order_relaxed) + kBatch > kTransferCapacity) {
    return false;
  }
  SpinLockHolder holder(&transfer_lock_);
  const size_t count = transfer_count_.load(std::memory_order_relaxed);
  if (count + kBatch > kTransferCapacity) return false;
  std::memcpy(transfer_ + count, objects, kBatch * sizeof(void*));
  transfer_count_.store(count + kBatch, std::memory_order_relaxed);
  return true;
}

void TlcacheBackend::EmptyTransfer() {
  SpinLockHolder holder(&transfer_lock_);
  const size_t n = transfer_count_.load(std::memory_order_relaxed);
  if (n == 0) return;
  for (size_t i = 0; i + 1 < n; ++i) WriteLink(transfer_[i], transfer_[i + 1]);
  list_.PushChain(transfer_[0], transfer_[n - 1], n);
  transfer_count_.store(0, std::memory_order_relaxed);
}

void* TlcacheBackend::Refill(TlcacheCache& cache) {
  // Inside the owner's window: the cache is ours, and empty.
  size_t n = TakeFromTransfer(cache.objects, TlcacheCache::kBatch);
  if (n == 0) n = list_.PopBatch(cache.objects, TlcacheCache::kBatch);
  if (n != 0) {
    cache.count.store(static_cast<uint32_t>(n - 1), std::memory_order_relaxed);
    void* object = cache.objects[n - 1];
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }
  return kNeedSystem;
}

void* TlcacheBackend::RefillAndClose(TlcacheCache& cache) {
  void* object = Refill(cache);
  CloseWindow(cache);
  // Outside the window: asking the system may run GcAll() (see Refill()).
  return object == kNeedSystem ? AllocFromSystemOrLimit() : object;
}

void* TlcacheBackend::AllocFromSystemOrLimit() {
  bool at_limit;
  void* object = AllocFromSystem(&at_limit);
  return at_limit ? AllocAtLimit() : object;
}

void TlcacheBackend::GiveBackHalf(TlcacheCache& cache, void* object) {
  // Inside the owner's window: the cache is ours, and full. Link the upper
  // half into a chain (the objects are poisoned but for their link words).
  constexpr uint32_t kKeep = TlcacheCache::kCapacity - TlcacheCache::kBatch;
  void** objects = cache.objects;
  if (!GiveToTransfer(objects + kKeep)) {
    for (uint32_t i = kKeep; i + 1 < TlcacheCache::kCapacity; ++i) {
      WriteLink(objects[i], objects[i + 1]);
    }
    list_.PushChain(objects[kKeep], objects[TlcacheCache::kCapacity - 1], TlcacheCache::kBatch);
  }
  objects[kKeep] = object;
  cache.count.store(kKeep + 1, std::memory_order_relaxed);
}

void TlcacheBackend::EmptyCache(TlcacheCache& cache) {
  const uint32_t n = cache.count.load(std::memory_order_relaxed);
  if (n == 0) return;
  for (uint32_t i = 0; i + 1 < n; ++i) WriteLink(cache.objects[i], cache.objects[i + 1]);
  list_.PushChain(cache.objects[0], cache.objects[n - 1], n);
  cache.count.store(0, std::memory_order_relaxed);
}

bool TlcacheBackend::BindCache(TlcacheCache& cache) {
  if (t_exiting || slot_ == kTlcacheSlots) return false;
  // Outside any window. Registers this thread's exit hook (a TLS destructor)
  // before taking the lock: the registration may allocate.
  t_exit_hook.armed = true;
  tlcache_list_lock.Lock();
  // A cache of slot_ is unbound or bound to this pool: a slot is given to a
  // new pool only after ~Pool of the previous one unbound all its caches.
  if (cache.pool == nullptr) {
    // Unlinked, so no drainer touches it: it is closed, empty and ours.
    cache.pool = this;
    cache.prev = nullptr;
    cache.next = first_cache_;
    if (first_cache_ != nullptr) first_cache_->prev = &cache;
    first_cache_ = &cache;
    // relaxed: only this thread's windows read it without the lock.
    cache.open.store(1, std::memory_order_relaxed);
  }
  tlcache_list_lock.Unlock();
  return true;
}

void* TlcacheBackend::AllocSlow() {
  if (slot_ < kTlcacheSlots) {
    TlcacheCache& cache = tlcache_caches[slot_];
    // The fast path skipped a fenced window or found the cache closed: a
    // drainer holds it, or it is not bound yet. Try the window (in the first
    // case the drain may be over), then bind and try once more.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (OpenWindow(cache, owner_fence_)) {
        void* object = PopFromCache(cache);
        if (object == nullptr) return RefillAndClose(cache);
        CloseWindow(cache);
        return object;
      }
      CloseWindow(cache);
      if (attempt == 0 && !BindCache(cache)) break;
    }
  }
  void* object = AllocShared();
  return object == kAtLimit ? AllocAtLimit() : object;
}

void* TlcacheBackend::AllocShared() {
  void* object;
  if (TakeFromTransfer(&object, 1) == 1 || (object = list_.Pop()) != nullptr) {
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }
  bool at_limit;
  object = AllocFromSystem(&at_limit);
  return at_limit ? kAtLimit : object;
}

void* TlcacheBackend::AllocAtLimit() {
  // Outside any window (the drain waits for every window of this pool,
  // including ours). Objects free in other threads' caches are free objects
  // of the pool: take them back before failing.
  tlcache_list_lock.Lock();
  DrainCaches(/*unbind=*/false);
  tlcache_list_lock.Unlock();
  void* object = AllocShared();
  if (object == kAtLimit) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return object;
}

void TlcacheBackend::FreeSlow(void* object) {
  if (slot_ < kTlcacheSlots) {
    TlcacheCache& cache = tlcache_caches[slot_];
    // As in AllocSlow().
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (OpenWindow(cache, owner_fence_)) {
        FreeInWindow(cache, object);
        CloseWindow(cache);
        return;
      }
      CloseWindow(cache);
      if (attempt == 0 && !BindCache(cache)) break;
    }
  }
  list_.Push(object);
}

void TlcacheBackend::DrainCaches(bool unbind) {
  if (first_cache_ == nullptr) return;
  // 1. Close every cache: from its owner's next window on, the owner
  //    bypasses it. relaxed: ordered before the loads of busy by
  //    HeavyBarrier().
  for (TlcacheCache* cache = first_cache_; cache != nullptr; cache = cache->next) {
    POOLGUARD_SCHED_POINT(kStoreHead);
    cache->open.store(0, std::memory_order_relaxed);
  }
  // 2. Either an owner's busy = 1 is visible to the loads below, or its load
  //    of open sees 0 (membarrier() ran a full barrier on its CPU).
  HeavyBarrier();
  for (TlcacheCache* cache = first_cache_; cache != nullptr; cache = cache->next) {
    // 3. Wait for a window in progress. acquire: pairs with CloseWindow()'s
    //    release; the owner's writes to the cache happen before ours. Owners
    //    never wait inside a window for this lock, so this wait ends.
#if defined(POOLGUARD_MUTANT_DRAIN_IGNORES_BUSY)
    // SEEDED BUG (fuzz/mutants/README.md): the drainer closes the cache but
    // does not wait for a window in progress, so it empties (and Flush()
    // releases) objects the owner is about to hand out or has just stored.
    static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
#else
    Backoff backoff;
    for (;;) {
      POOLGUARD_SCHED_POINT(kLoadHead);
      if (cache->busy.load(std::memory_order_acquire) == 0) break;
      backoff.Wait();
    }
#endif
    // 4. The contents are ours until the cache is opened again.
    EmptyCache(*cache);
    if (unbind) cache->pool = nullptr;
  }
  TlcacheCache* next;
  for (TlcacheCache* cache = first_cache_; cache != nullptr; cache = next) {
    next = cache->next;
    if (unbind) {
      // Unbound caches stay closed; the owner's next call takes the slow
      // path, whose BindCache() takes this lock after us.
      cache->prev = cache->next = nullptr;
      continue;
    }
    // 5. Hand the cache back. release: pairs with the owner's acquire load
    //    of open; it then sees the cache empty.
    POOLGUARD_SCHED_POINT(kStoreHead);
    cache->open.store(1, std::memory_order_release);
  }
  if (unbind) first_cache_ = nullptr;
}

void TlcacheBackend::ReturnCacheAtThreadExit(TlcacheCache& cache) {
  // The owner, at thread exit, under the list lock: no drainer runs and no
  // window of ours is open.
  EmptyCache(cache);
  if (cache.prev != nullptr) {
    cache.prev->next = cache.next;
  } else {
    first_cache_ = cache.next;
  }
  if (cache.next != nullptr) cache.next->prev = cache.prev;
  cache.prev = cache.next = nullptr;
  cache.pool = nullptr;
  cache.open.store(0, std::memory_order_relaxed);
}

void TlcacheBackend::Flush() {
  tlcache_list_lock.Lock();
  DrainCaches(/*unbind=*/false);
  EmptyTransfer();
  FlushShared();
  tlcache_list_lock.Unlock();
}

void TlcacheBackend::Gc() {
  // Simple and exact: every cache and the transfer cache go back to the
  // shared list, which is then trimmed to min_free.
  tlcache_list_lock.Lock();
  DrainCaches(/*unbind=*/false);
  EmptyTransfer();
  GcShared();
  tlcache_list_lock.Unlock();
}

PoolStats TlcacheBackend::Stats() const {
  tlcache_list_lock.Lock();
  size_t cached = 0;
  // relaxed: a count an owner may be changing; exact when quiescent.
  for (const TlcacheCache* cache = first_cache_; cache != nullptr; cache = cache->next) {
    cached += cache->count.load(std::memory_order_relaxed);
  }
  cached += transfer_count_.load(std::memory_order_relaxed);
  const SharedFreeList::Counts counts = list_.counts();
  tlcache_list_lock.Unlock();
  PoolStats stats;
  stats.allocated = counts.allocated;
  // Under concurrency an object moving between a cache and the list may be
  // seen twice; never report more free than allocated.
  stats.free = std::min(stats.allocated, counts.free + cached);
  stats.used = stats.allocated - stats.free;
  stats.failed = failed_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace poolguard::internal
