// Where a fuzz target's time goes, for //tools:fuzz_speed: with the
// environment variable POOLGUARD_EXEC_PROFILE=<file> set, the executors
// charge the wall time of every input to phases, and the process writes the
// totals to <file> (JSON) at exit. Unset (every fuzzing campaign, every
// test), each charge point costs one relaxed load of a flag.
//
// Attribution: each OS thread of a run charges the time since its last
// charge point to the phase it was in. A scheduled run has one running
// thread at a time, so its phases add up to the run's time; a thread that
// waits for its turn charges nothing, and the thread it woke charges the
// wake-up latency (from HandOver() to running) to kHandOff. The profile's
// own clock reads (two per schedule point) inflate the totals: measure
// exec/s with the profile off, and read the profile as shares.

#ifndef POOLGUARD_FUZZ_EXEC_PROFILE_H_
#define POOLGUARD_FUZZ_EXEC_PROFILE_H_

#include <atomic>
#include <cstdint>

namespace poolguard::fuzz {

// The charge points run at every schedule point and op: inlined into their
// callers and left out of libFuzzer's coverage, so that with the profile off
// each is one load and one untraced branch (a traced comparison costs a call,
// and the profile's branches say nothing about the pools).
#define POOLGUARD_PROFILE_INLINE __attribute__((always_inline, no_sanitize("coverage"))) inline

enum class ExecPhase : int {
  kDecode,    // bytes -> Schedule and Program
  kThreads,   // creating, starting and joining the run's OS threads
  kSchedule,  // the scheduler's bookkeeping at a schedule point (no switch)
  kHandOff,   // from one thread's HandOver() until the next one runs
  kOps,       // the program's ops: the pool calls and the harness around them
  kOracles,   // quiescent checks, a thread's and the run's final checks
  kOther,     // the rest: setting up and tearing down the World, libFuzzer
  kPhases,
};

namespace exec_profile_internal {
extern std::atomic<bool> enabled;
void Switch(ExecPhase phase);
ExecPhase Current();
}  // namespace exec_profile_internal

// Reads POOLGUARD_EXEC_PROFILE (once; later calls are a load).
bool ExecProfileEnabled();

// Charges the calling thread's time since its last charge to its current
// phase, then makes `phase` current. The first call on a thread starts its
// clock.
POOLGUARD_PROFILE_INLINE void ChargeTo(ExecPhase phase) {
  if (exec_profile_internal::enabled.load(std::memory_order_relaxed)) {
    exec_profile_internal::Switch(phase);
  }
}

// The calling thread's current phase (kOther before its first charge).
POOLGUARD_PROFILE_INLINE ExecPhase CurrentPhase() {
  return exec_profile_internal::enabled.load(std::memory_order_relaxed)
             ? exec_profile_internal::Current()
             : ExecPhase::kOther;
}

// Charges the calling thread's time since its last charge, then makes kOps
// current, on behalf of op kind `kind` (0 to kMaxOpKinds - 1, named `name`, a
// string with static storage; -1: no op). Time in kOps is also summed per op
// kind, so the profile says which ops the ops phase spends its time on.
inline constexpr int kMaxOpKinds = 32;
namespace exec_profile_internal {
void SwitchToOp(int kind, const char* name);
}  // namespace exec_profile_internal
POOLGUARD_PROFILE_INLINE void ChargeToOp(int kind, const char* name) {
  if (exec_profile_internal::enabled.load(std::memory_order_relaxed)) {
    exec_profile_internal::SwitchToOp(kind, name);
  }
}

// Charges `phase` for the scope, then goes back to the phase before it.
class ScopedPhase {
 public:
  POOLGUARD_PROFILE_INLINE explicit ScopedPhase(ExecPhase phase) : previous_(CurrentPhase()) {
    ChargeTo(phase);
  }
  POOLGUARD_PROFILE_INLINE ~ScopedPhase() { ChargeTo(previous_); }
  ScopedPhase(const ScopedPhase&) = delete;
  ScopedPhase& operator=(const ScopedPhase&) = delete;

 private:
  const ExecPhase previous_;
};

// Charges the calling thread's time to its current phase and stops its
// clock: it is about to wait (for a join, for the run's end), and waiting is
// charged by whoever runs meanwhile. The next ChargeTo() starts it again.
void StopClock();

// The hand-off clock. The handing thread charges its time, remembers its
// phase and stamps the time; the thread it woke charges the time since the
// stamp to kHandOff, and goes back to the phase it had when it handed over.
void HandOffStart();
void HandOffEnd();

// One input has run, in `ns` of wall time inside LLVMFuzzerTestOneInput().
void CountExec(uint64_t ns);
uint64_t ExecProfileNowNs();

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_EXEC_PROFILE_H_
