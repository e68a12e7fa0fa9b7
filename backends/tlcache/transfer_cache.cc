#include "backends/tlcache/transfer_cache.h"

#include <algorithm>
#include <cstring>

#include "pool/sched_point.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

TransferCache::TransferCache(size_t capacity) : capacity_(capacity) {}

TransferCache::~TransferCache() {
  void** slots = slots_.load(std::memory_order_relaxed);
  if (slots != nullptr) ReleaseToSystem(slots, capacity_ * sizeof(void*), sizeof(void*));
}

bool TransferCache::Reserve() {
  // One asker: the others (and later callers) take its answer. (The callers
  // look at reserve_tried() first: no fast path is needed here.)
  if (reserve_tried_.exchange(true, std::memory_order_relaxed)) {
    return slots_.load(std::memory_order_relaxed) != nullptr;
  }
  void** slots = static_cast<void**>(AllocateFromSystem(capacity_ * sizeof(void*), sizeof(void*)));
  if (slots == nullptr) return false;
  SpinLockHolder holder(&lock_);
  // relaxed: published by lock_, under which every reader dereferences it.
  slots_.store(slots, std::memory_order_relaxed);
  return true;
}

size_t TransferCache::Take(void** out, size_t want) {
  // relaxed: a hint, read again under the lock.
  if (count_.load(std::memory_order_relaxed) == 0) return 0;
  SpinLockHolder holder(&lock_);
  const size_t count = count_.load(std::memory_order_relaxed);
  const size_t n = std::min(want, count);
  POOLGUARD_SCHED_POINT(kReadNext);
#if defined(POOLGUARD_MUTANT_TRANSFER_TAKE_WRONG_END)
  // SEEDED BUG (fuzz/mutants/README.md): takes the oldest n pointers but
  // lowers the count as if it took the newest, so those stay to be taken
  // again, and the newest are lost.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  std::memcpy(out, slots_.load(std::memory_order_relaxed), n * sizeof(void*));
#else
  std::memcpy(out, slots_.load(std::memory_order_relaxed) + (count - n), n * sizeof(void*));
#endif
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(count - n, std::memory_order_relaxed);
  return n;
}

bool TransferCache::Give(void* const* objects, size_t n) {
  // No look before the lock: a full thread cache gives back once per half a
  // cache of frees, and a refusal sends the batch to the shared list, whose
  // claim costs more than this lock.
  SpinLockHolder holder(&lock_);
  const size_t count = count_.load(std::memory_order_relaxed);
  void** slots = slots_.load(std::memory_order_relaxed);
  if (slots == nullptr || count + n > capacity_) return false;
  POOLGUARD_SCHED_POINT(kStoreHead);
  std::memcpy(slots + count, objects, n * sizeof(void*));
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(count + n, std::memory_order_relaxed);
  return true;
}

size_t TransferCache::TakeAll(void** out) {
  SpinLockHolder holder(&lock_);
  const size_t n = count_.load(std::memory_order_relaxed);
  if (n != 0) std::memcpy(out, slots_.load(std::memory_order_relaxed), n * sizeof(void*));
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(0, std::memory_order_relaxed);
  return n;
}

}  // namespace poolguard::internal
