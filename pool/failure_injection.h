// Failure injection for the system memory layer: makes AllocateFromSystem()
// (pool/system_memory.h), which every backend and Pool::Create() go through,
// return nullptr on demand, so that tests, fuzzers and the soak test run the
// failure paths nobody runs otherwise (HAProxy's DEBUG_FAIL_ALLOC).
//
// Process-wide, safe to change from any thread. Off (the default), it costs
// one relaxed load on the path that asks the system for memory, never on a
// pool's Alloc()/Free() fast path.

#ifndef POOLGUARD_POOL_FAILURE_INJECTION_H_
#define POOLGUARD_POOL_FAILURE_INJECTION_H_

#include <cstddef>
#include <cstdint>

namespace poolguard {

struct SystemAllocFailures {
  // Fail every Nth request (the Nth, 2Nth, ...); 0: off.
  uint64_t every_nth = 0;
  // Fail each request with this probability, drawn from `seed`; 0: off.
  double probability = 0;
  uint64_t seed = 1;
  // Fail every request once this many bytes have been handed out since the
  // policy was set; 0: off.
  size_t after_bytes = 0;
};

// Replaces the policy and restarts its counters. Any combination of the
// fields may be on; a request fails when any of them says so.
void SetSystemAllocFailures(const SystemAllocFailures& failures);

// Turns every policy off, including a pending FailNextSystemAllocation().
void ClearSystemAllocFailures();

// Makes the next request to the system fail (whichever thread makes it),
// whatever the policy.
void FailNextSystemAllocation();

// Requests failed by injection since the process started.
uint64_t InjectedSystemAllocFailures();

// The system calls backends make besides memory requests, which tests and
// fuzzers can make fail too: tlcache's heavy barrier calls membarrier(), and
// falls back to mprotect() when that fails (backends/tlcache/heavy_barrier.h).
enum class SystemCall {
  kMembarrier,
  kMprotect,
};

// From the `from_call`-th call of `call` on (1: the next one), every call
// fails with `error`, an errno value (EPERM, ENOSYS, ENOMEM, ...); error 0
// turns it off. Process-wide, safe from any thread.
void SetSystemCallFailure(SystemCall call, int error, uint64_t from_call = 1);

namespace internal {
// The system memory layer's question for each request: does this one fail?
// (Counts it.) One relaxed load when no injection is set.
bool ShouldInjectFailure(size_t size);
// A backend's question before each call of `call`: 0, or the errno value to
// fail it with. Counts the call. One relaxed load when no failure is set.
int InjectedSystemCallError(SystemCall call);
// Whether a failure of `call` is set (SetSystemCallFailure() with an error
// other than 0), whether or not its first failing call has come. Counts
// nothing.
bool SystemCallFailureSet(SystemCall call);
// fork(): the injection lock held across it (pool/registry.cc).
void LockInjectionForFork();
void UnlockInjectionAfterFork();
}  // namespace internal

}  // namespace poolguard

#endif  // POOLGUARD_POOL_FAILURE_INJECTION_H_
