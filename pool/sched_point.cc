#include "pool/sched_point.h"

#if defined(POOLGUARD_SCHEDULE_POINTS)

#include <atomic>

namespace poolguard::internal {
namespace {
// relaxed: set once before the controlled threads start (thread creation
// orders it), read on every point.
std::atomic<SchedPointHook> g_hook{nullptr};
}  // namespace

void SetSchedPointHook(SchedPointHook hook) { g_hook.store(hook, std::memory_order_relaxed); }

// Left out of libFuzzer's coverage: it runs at every schedule point, and its
// one branch (a hook or none) says nothing about the pools.
__attribute__((no_sanitize("coverage"))) void RunSchedPointHook(SchedPoint point, uint32_t site) {
  SchedPointHook hook = g_hook.load(std::memory_order_relaxed);
  if (hook != nullptr) hook(point, site);
}

}  // namespace poolguard::internal

#endif  // POOLGUARD_SCHEDULE_POINTS
