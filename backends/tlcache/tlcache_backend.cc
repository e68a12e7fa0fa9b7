#include "backends/tlcache/tlcache_backend.h"

#include <algorithm>

#include "pool/sched_point.h"
#include "pool/system_memory.h"

#if !defined(__x86_64__)
#error "the tlcache backend needs a 16-byte CAS; only x86-64 (cmpxchg16b) is supported"
#endif

namespace poolguard::internal {
namespace {

uint32_t Clamp(size_t value, uint32_t low, uint32_t high) {
  return static_cast<uint32_t>(std::max<size_t>(low, std::min<size_t>(value, high)));
}

}  // namespace

TlcacheBackend::TlcacheBackend(const PoolLayout& layout)
    : layout_(layout),
      initial_capacity_(Clamp(kInitialCacheBytes / layout.slot_size, 4, 64)),
      max_capacity_(Clamp(kMaxCacheBytes / layout.slot_size, initial_capacity_, kMaxCacheObjects)),
      // Two of the largest batches a cache gives back (half a cache each).
      transfer_(max_capacity_) {}

TlcacheBackend::~TlcacheBackend() {
  ThreadCache* unbound;
  void* chain;
  {
    SpinLockHolder holder(&cache_registry_lock);
    unbound = UnbindAll();
    EmptyTransfer();
    chain = list_.TakeAllToRelease();
  }
  // Outside the lock: nothing is given to the system under it (the fork
  // handlers close the system layer while holding it).
  CacheSet::FreeCaches(unbound);
  ReleaseChain(chain);
}

// ---------------------------------------------------------------------------
// The misses of Alloc() and Free().

void* TlcacheBackend::AllocInWindow(ThreadCache& cache) {
  const uint32_t n = cache.count.load(std::memory_order_relaxed);
  if (n == 0) return RefillAndClose(cache);
  POOLGUARD_SCHED_POINT(kReadNext);
  void* object = cache.objects()[n - 1];
  // A drainer reads the count once it has closed the cache and the window
  // has ended: this store must land inside the window.
  POOLGUARD_SCHED_POINT(kStoreHead);
  cache.count.store(n - 1, std::memory_order_relaxed);
  CloseWindow(cache);
  UnpoisonObject(object, layout_.slot_size);
  return object;
}

void TlcacheBackend::FreeInWindow(ThreadCache& cache, void* object) {
  const uint32_t n = cache.count.load(std::memory_order_relaxed);
  if (n == cache.capacity) return SpillAndClose(cache, object);
  POOLGUARD_SCHED_POINT(kStoreHead);
  cache.objects()[n] = object;
  POOLGUARD_SCHED_POINT(kStoreHead);  // As in AllocInWindow(): inside the window.
  cache.count.store(n + 1, std::memory_order_relaxed);
  CloseWindow(cache);
}

TlcacheBackend::RefillResult TlcacheBackend::Refill(ThreadCache& cache) {
  // Inside the owner's window: the cache is ours, and empty.
  const size_t batch = std::max<uint32_t>(1, cache.capacity / 2);
  size_t n = transfer_.Take(cache.objects(), batch);
  if (n == 0) n = list_.PopBatch(cache.objects(), batch);
  if (n == 0) return RefillResult::kNothingShared;
  cache.refilled = 1;
  POOLGUARD_SCHED_POINT(kStoreHead);
  cache.count.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
  return RefillResult::kRefilled;
}

void* TlcacheBackend::RefillAndClose(ThreadCache& cache) {
  if (Refill(cache) == RefillResult::kRefilled) return AllocInWindow(cache);
  CloseWindow(cache);
  // Outside the window: asking the system may run GcAll() (see Refill()).
  return AllocFromSystemOrLimit();
}

void TlcacheBackend::SpillAndClose(ThreadCache& cache, void* object) {
  // Inside the owner's window: the cache is ours, and full.
  if (cache.refilled != 0 && cache.capacity < max_capacity_) {
    // It refilled since it last gave objects back: the working set is larger
    // than the cache. Grow instead of trading halves with the shared levels.
    const uint32_t grown = std::min(max_capacity_, cache.capacity * 2);
    if (grown <= cache.slots) {
      cache.capacity = grown;
      return FreeInWindow(cache, object);
    }
    // A bigger cache needs memory from the system: outside the window.
    cache.refilled = 0;  // If growing fails, the retry below gives half back.
    CloseWindow(cache);
    Grow(&cache, grown, grown);
    return Free(object);
  }
  if (ABSL_PREDICT_FALSE(transfer_.capacity() == 0) && !transfer_.reserve_tried()) {
    // Objects are leaving this thread's cache: the transfer cache's slots
    // are worth having. They come from the system: outside the window.
    CloseWindow(cache);
    transfer_.Reserve();
    return Free(object);
  }
  // Give the upper half back: to the transfer cache if it has room, else as
  // a chain (the objects are poisoned but for their link words) to the
  // shared list.
  const uint32_t half = std::max<uint32_t>(1, cache.capacity / 2);
  const uint32_t keep = cache.capacity - half;
  void** objects = cache.objects();
#if defined(POOLGUARD_MUTANT_SPILL_GIVES_ONE_TOO_MANY)
  // SEEDED BUG (fuzz/mutants/README.md): off by one in the upper half's
  // start: objects[keep - 1] goes to the transfer cache and stays in this one.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  const uint32_t first_given = keep - 1;
#else
  const uint32_t first_given = keep;
#endif
  if (!transfer_.Give(objects + first_given, half)) {
    for (uint32_t i = keep; i + 1 < cache.capacity; ++i) WriteLink(objects[i], objects[i + 1]);
    list_.PushChain(objects[keep], objects[cache.capacity - 1], half);
  }
  POOLGUARD_SCHED_POINT(kStoreHead);
  objects[keep] = object;
  POOLGUARD_SCHED_POINT(kStoreHead);  // The count, inside the window.
  cache.count.store(keep + 1, std::memory_order_relaxed);
  cache.refilled = 0;
  CloseWindow(cache);
}

void* TlcacheBackend::AllocUnopened(ThreadCache& cache) {
  if (OpenFencedWindow(cache)) return AllocInWindow(cache);
  CloseWindow(cache);
  // A drainer holds the cache: do not wait for it.
  return AllocShared();
}

void TlcacheBackend::FreeUnopened(ThreadCache& cache, void* object) {
  if (OpenFencedWindow(cache)) return FreeInWindow(cache, object);
  CloseWindow(cache);
  list_.Push(object);
}

void* TlcacheBackend::AllocUnbound() {
  // Outside any window. Binding asks the system for the cache's memory, and
  // may be refused (no memory, no thread index, the thread is exiting).
  if (ThreadCache* cache = Bind(initial_capacity_, initial_capacity_)) {
    if (OpenWindow(*cache)) return AllocInWindow(*cache);
    return AllocUnopened(*cache);
  }
  return AllocShared();
}

void TlcacheBackend::FreeUnbound(void* object) {
  if (ThreadCache* cache = Bind(initial_capacity_, initial_capacity_)) {
    if (OpenWindow(*cache)) return FreeInWindow(*cache, object);
    return FreeUnopened(*cache, object);
  }
  list_.Push(object);
}

// ---------------------------------------------------------------------------
// The shared levels, and the system.

void* TlcacheBackend::AllocShared() {
  void* object;
  if (transfer_.Take(&object, 1) == 1 || (object = list_.Pop()) != nullptr) {
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }
  return AllocFromSystemOrLimit();
}

TlcacheBackend::SystemResult TlcacheBackend::AllocFromSystem(void** object) {
  // Reserve the object in `allocated` first, so that concurrent callers
  // cannot overshoot max_objects.
  if (!list_.ReserveAllocated(layout_.max_objects)) return SystemResult::kAtLimit;
  *object = AllocateFromSystem(layout_.slot_size, layout_.alignment);
  if (ABSL_PREDICT_FALSE(*object == nullptr)) {
    list_.UnreserveAllocated();
    return SystemResult::kNoMemory;
  }
  return SystemResult::kObject;
}

void* TlcacheBackend::AllocFromSystemOrLimit() {
  void* object = nullptr;
  switch (AllocFromSystem(&object)) {
    case SystemResult::kObject:
      return object;
    case SystemResult::kAtLimit:
      return AllocAtLimit();
    case SystemResult::kNoMemory:
      break;
  }
  POOLGUARD_SCHED_POINT(kCounter);
  failed_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void* TlcacheBackend::AllocAtLimit() {
  // Outside any window (the drain waits for every window of this pool,
  // including ours). Objects free in other threads' caches are free objects
  // of the pool: take them back before failing.
  {
    SpinLockHolder holder(&cache_registry_lock);
    DrainAll(/*capacity=*/0);
  }
  void* object;
  if (transfer_.Take(&object, 1) == 1 || (object = list_.Pop()) != nullptr) {
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }
  POOLGUARD_SCHED_POINT(kCounter);
  failed_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void TlcacheBackend::TakeBack(ThreadCache& cache) {
  // The caller owns the cache's contents (a drainer between close and
  // reopen, or the owner outside any window, under the registry lock).
  const uint32_t n = cache.count.load(std::memory_order_relaxed);
  if (n == 0) return;
  void** objects = cache.objects();
  for (uint32_t i = 0; i + 1 < n; ++i) WriteLink(objects[i], objects[i + 1]);
  list_.PushChain(objects[0], objects[n - 1], n);
  cache.count.store(0, std::memory_order_relaxed);
}

void TlcacheBackend::EmptyTransfer() {
  void* objects[TransferCache::kMaxCapacity];
  const size_t n = transfer_.TakeAll(objects);
  if (n == 0) return;
  for (size_t i = 0; i + 1 < n; ++i) WriteLink(objects[i], objects[i + 1]);
  list_.PushChain(objects[0], objects[n - 1], n);
}

void TlcacheBackend::ReleaseChain(void* chain) {
  while (chain != nullptr) {
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(chain);
    ReleaseToSystem(chain, layout_.slot_size, layout_.alignment);
    chain = next;
  }
}

// ---------------------------------------------------------------------------
// Flush, Gc, Stats, fork.

void TlcacheBackend::Flush() {
  void* chain;
  {
    SpinLockHolder holder(&cache_registry_lock);
    DrainAll(initial_capacity_);
    EmptyTransfer();
    // The detached chain is ours alone.
    chain = list_.TakeAllToRelease();
  }
  // Outside the lock: nothing is given to the system under it.
  ReleaseChain(chain);
}

void TlcacheBackend::Gc() {
  // Simple and exact: every cache and the transfer cache go back to the
  // shared list, which is then trimmed to min_free.
  {
    SpinLockHolder holder(&cache_registry_lock);
    DrainAll(initial_capacity_);
    EmptyTransfer();
  }
  // Batches of the surplus above min_free, each counted under its claim
  // (shared_free_list.h), so that a concurrent Alloc() or Gc() never makes
  // it release below min_free.
  void* batch[64];
  size_t n;
  while ((n = list_.PopSurplusToRelease(batch, 64, layout_.min_free)) != 0) {
    for (size_t i = 0; i < n; ++i) {
      ReleaseToSystem(batch[i], layout_.slot_size, layout_.alignment);
    }
  }
}

PoolStats TlcacheBackend::Stats() const {
  size_t cached;
  SharedFreeList::Counts counts;
  {
    SpinLockHolder holder(&cache_registry_lock);
    cached = CachedObjects() + transfer_.count();
    counts = list_.counts();
  }
  PoolStats stats;
  stats.allocated = counts.allocated;
  // Under concurrency an object moving between a cache and the list may be
  // seen twice; never report more free than allocated.
  stats.free = std::min(stats.allocated, counts.free + cached);
  stats.used = stats.allocated - stats.free;
  stats.failed = failed_.load(std::memory_order_relaxed);
  return stats;
}

void TlcacheBackend::LockForFork() {
  // Neither is ever held while waiting for the other, so any order works.
  transfer_.LockForFork();
  list_.LockForFork();
}

void TlcacheBackend::UnlockAfterFork(bool child) {
  list_.UnlockAfterFork();
  transfer_.UnlockAfterFork();
}

}  // namespace poolguard::internal
