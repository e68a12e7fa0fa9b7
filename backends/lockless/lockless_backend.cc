#include "backends/lockless/lockless_backend.h"

#include "absl/base/optimization.h"
#include "pool/sched_point.h"
#include "pool/system_memory.h"

namespace poolguard::internal {

void* LocklessBackend::AllocFromSystem() {
  // Reserve the object in `allocated` before asking the system, so that
  // concurrent callers cannot overshoot max_objects.
  if (!list_.ReserveAllocated(layout_.max_objects)) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  void* object = AllocateFromSystem(layout_.slot_size, layout_.alignment);
  if (ABSL_PREDICT_FALSE(object == nullptr)) {
    list_.UnreserveAllocated();
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
  return object;
}

void LocklessBackend::Flush() {
  // The detached chain is ours alone: release it.
  void* object = list_.TakeAllToRelease();
  while (object != nullptr) {
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(object);
    ReleaseToSystem(object, layout_.slot_size, layout_.alignment);
    object = next;
  }
}

void LocklessBackend::Gc() {
  // Batches of the surplus above min_free, each counted under its claim, so
  // that concurrent Alloc() or Gc() calls never make it release below
  // min_free.
  void* batch[32];
  size_t n;
  while ((n = list_.PopSurplusToRelease(batch, 32, layout_.min_free)) != 0) {
    for (size_t i = 0; i < n; ++i) {
      ReleaseToSystem(batch[i], layout_.slot_size, layout_.alignment);
    }
  }
}

PoolStats LocklessBackend::Stats() const {
  const SharedFreeList::Counts counts = list_.counts();
  PoolStats stats;
  stats.allocated = counts.allocated;
  stats.free = counts.free;
  stats.used = stats.allocated - stats.free;
  stats.failed = failed_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace poolguard::internal
