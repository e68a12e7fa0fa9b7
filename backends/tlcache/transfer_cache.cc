#include "backends/tlcache/transfer_cache.h"

#include <algorithm>
#include <cstring>

#include "pool/sched_point.h"

namespace poolguard::internal {

size_t TransferCache::Take(void** out, size_t want) {
  // relaxed: a hint, read again under the lock.
  if (count_.load(std::memory_order_relaxed) == 0) return 0;
  SpinLockHolder holder(&lock_);
  const size_t count = count_.load(std::memory_order_relaxed);
  const size_t n = std::min(want, count);
  POOLGUARD_SCHED_POINT(kReadNext);
  std::memcpy(out, slots_ + (count - n), n * sizeof(void*));
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(count - n, std::memory_order_relaxed);
  return n;
}

bool TransferCache::Give(void* const* objects, size_t n) {
  // relaxed: a hint, read again under the lock.
  if (count_.load(std::memory_order_relaxed) + n > kCapacity) return false;
  SpinLockHolder holder(&lock_);
  const size_t count = count_.load(std::memory_order_relaxed);
  if (count + n > kCapacity) return false;
  POOLGUARD_SCHED_POINT(kStoreHead);
  std::memcpy(slots_ + count, objects, n * sizeof(void*));
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(count + n, std::memory_order_relaxed);
  return true;
}

size_t TransferCache::TakeAll(void** out) {
  SpinLockHolder holder(&lock_);
  const size_t n = count_.load(std::memory_order_relaxed);
  std::memcpy(out, slots_, n * sizeof(void*));
  POOLGUARD_SCHED_POINT(kCounter);
  count_.store(0, std::memory_order_relaxed);
  return n;
}

}  // namespace poolguard::internal
