// Failure injection for the system memory layer (pool/failure_injection.h).

#include "pool/failure_injection.h"

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "pool/spinlock.h"
#include "pool/splitmix64.h"

namespace poolguard {
namespace {

// Whether any injection is set: the only thing the allocation path reads when
// none is. relaxed: a hint, re-checked under g_injection_lock.
ABSL_CONST_INIT std::atomic<bool> g_injection_active{false};
ABSL_CONST_INIT std::atomic<uint64_t> g_injected_failures{0};

ABSL_CONST_INIT internal::SpinLock g_injection_lock;
struct InjectionState {
  SystemAllocFailures policy;
  uint64_t requests = 0;
  size_t bytes = 0;
  uint64_t rng = 1;
  bool fail_next = false;
};
ABSL_CONST_INIT InjectionState g_injection ABSL_GUARDED_BY(g_injection_lock);

// SetSystemCallFailure(): per call, the error and the call it starts at, and
// the calls counted so far. relaxed: independent counters and settings; a
// test sets them before the calls it means to fail.
struct SystemCallFailure {
  std::atomic<int> error{0};
  std::atomic<uint64_t> from_call{0};
  std::atomic<uint64_t> calls{0};
};
ABSL_CONST_INIT SystemCallFailure g_call_failures[2];

bool Active(const InjectionState& state) {
  return state.fail_next || state.policy.every_nth != 0 || state.policy.probability > 0 ||
         state.policy.after_bytes != 0;
}

}  // namespace

void SetSystemAllocFailures(const SystemAllocFailures& failures) {
  internal::SpinLockHolder holder(&g_injection_lock);
  const bool fail_next = g_injection.fail_next;
  g_injection = InjectionState{};
  g_injection.policy = failures;
  g_injection.rng = failures.seed;
  g_injection.fail_next = fail_next;
  g_injection_active.store(Active(g_injection), std::memory_order_relaxed);
}

void ClearSystemAllocFailures() {
  internal::SpinLockHolder holder(&g_injection_lock);
  g_injection = InjectionState{};
  g_injection_active.store(false, std::memory_order_relaxed);
}

void FailNextSystemAllocation() {
  internal::SpinLockHolder holder(&g_injection_lock);
  g_injection.fail_next = true;
  g_injection_active.store(true, std::memory_order_relaxed);
}

uint64_t InjectedSystemAllocFailures() {
  return g_injected_failures.load(std::memory_order_relaxed);
}

void SetSystemCallFailure(SystemCall call, int error, uint64_t from_call) {
  SystemCallFailure& failure = g_call_failures[static_cast<int>(call)];
  failure.calls.store(0, std::memory_order_relaxed);
  failure.from_call.store(from_call, std::memory_order_relaxed);
  failure.error.store(error, std::memory_order_relaxed);
}

namespace internal {

bool ShouldInjectFailure(size_t size) {
  if (ABSL_PREDICT_TRUE(!g_injection_active.load(std::memory_order_relaxed))) return false;
  SpinLockHolder holder(&g_injection_lock);
  InjectionState& state = g_injection;
  bool fail = false;
  if (state.fail_next) {
    state.fail_next = false;
    fail = true;
  }
  ++state.requests;
  if (state.policy.every_nth != 0 && state.requests % state.policy.every_nth == 0) fail = true;
  if (state.policy.probability > 0) {
    const uint64_t z = SplitMix64(state.rng);
    if (static_cast<double>(z >> 11) * 0x1.0p-53 < state.policy.probability) fail = true;
  }
  if (state.policy.after_bytes != 0 && state.bytes + size > state.policy.after_bytes) {
    fail = true;
  }
  if (!fail) state.bytes += size;
  g_injection_active.store(Active(state), std::memory_order_relaxed);
  if (fail) g_injected_failures.fetch_add(1, std::memory_order_relaxed);
  return fail;
}

int InjectedSystemCallError(SystemCall call) {
  SystemCallFailure& failure = g_call_failures[static_cast<int>(call)];
  const int error = failure.error.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_TRUE(error == 0)) return 0;
  const uint64_t nth = failure.calls.fetch_add(1, std::memory_order_relaxed) + 1;
  return nth >= failure.from_call.load(std::memory_order_relaxed) ? error : 0;
}

bool SystemCallFailureSet(SystemCall call) {
  return g_call_failures[static_cast<int>(call)].error.load(std::memory_order_relaxed) != 0;
}

void LockInjectionForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_injection_lock.Lock(); }
void UnlockInjectionAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_injection_lock.Unlock(); }

}  // namespace internal
}  // namespace poolguard
