// The process byte limit and the reclaim hook (pool/limits.h).

#include "pool/limits.h"

#include <atomic>

#include "absl/base/attributes.h"

namespace poolguard {
namespace {

// Bytes held from the system, and the limit (0: none). relaxed: counters;
// a request reserves its bytes with a CAS before it asks the system, so the
// total never exceeds the limit.
ABSL_CONST_INIT std::atomic<size_t> g_bytes_in_use{0};
ABSL_CONST_INIT std::atomic<size_t> g_byte_limit{0};
ABSL_CONST_INIT std::atomic<void (*)()> g_reclaim{nullptr};
// Set while this thread runs the reclaim hook: a request it makes meanwhile
// fails instead of reclaiming again.
ABSL_CONST_INIT thread_local bool t_reclaiming = false;

}  // namespace

void SetProcessByteLimit(size_t bytes) { g_byte_limit.store(bytes, std::memory_order_relaxed); }

size_t ProcessByteLimit() { return g_byte_limit.load(std::memory_order_relaxed); }

size_t SystemBytesInUse() { return g_bytes_in_use.load(std::memory_order_relaxed); }

namespace internal {

void SetSystemReclaimHook(void (*reclaim)()) {
  // release: pairs with the acquire load in GcAllPools().
  g_reclaim.store(reclaim, std::memory_order_release);
}

bool GcAllPools() {
  void (*reclaim)() = g_reclaim.load(std::memory_order_acquire);
  if (reclaim == nullptr || t_reclaiming) return false;
  t_reclaiming = true;
  reclaim();
  t_reclaiming = false;
  return true;
}

bool ReserveSystemBytes(size_t size) {
  size_t in_use = g_bytes_in_use.load(std::memory_order_relaxed);
  for (;;) {
    const size_t limit = g_byte_limit.load(std::memory_order_relaxed);
    if (limit != 0 && (in_use > limit || size > limit - in_use)) return false;
    if (g_bytes_in_use.compare_exchange_weak(in_use, in_use + size, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void UnreserveSystemBytes(size_t size) {
  g_bytes_in_use.fetch_sub(size, std::memory_order_relaxed);
}

}  // namespace internal
}  // namespace poolguard
