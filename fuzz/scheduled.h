// The scheduled executor: a program's threads on real OS threads, exactly one
// running at a time, switching only at schedule points (POOLGUARD_SCHED_POINT
// in the pool and backend code, plus one before each op). Which thread runs
// is decided by a Schedule decoded from the fuzzer's input, so one input
// always replays the same interleaving, and libFuzzer can minimize a crash.
//
// The policy is PCT (Burckhardt et al., ASPLOS 2010): every thread has a
// priority and the highest-priority runnable thread runs; at each change
// point the running thread drops below all others. A change point names a
// thread and the number of that thread's own schedule points before it, so
// a fuzzer's mutation of one keeps its meaning when other threads change.
// A thread that reaches a wait loop (SchedPoint::kSpin) is not runnable until
// another thread makes progress; when no thread is runnable, or the step
// budget runs out, the hang oracle fires.
//
// Under ThreadSanitizer the hand-offs are hidden from TSan (it would otherwise
// see a happens-before edge at each switch and miss races between the threads
// it serializes), so TSan judges the pool's own synchronization only.
//
// REQUIRES: the binary is built with the "_sched" variant (schedule points
// compiled in); otherwise threads switch only between ops.

#ifndef POOLGUARD_FUZZ_SCHEDULED_H_
#define POOLGUARD_FUZZ_SCHEDULED_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "fuzz/op_program.h"

namespace poolguard::fuzz {

struct Schedule {
  static constexpr size_t kMaxChangePoints = 3;
  // Bytes DecodeSchedule() reads; the program follows them in a fuzz input:
  // one priority per thread, a change-point count, then {thread, step} pairs.
  static constexpr size_t kEncodedSize = Program::kMaxThreads + 1 + kMaxChangePoints * 2;

  struct ChangePoint {
    size_t thread;
    // The thread drops when it reaches its schedule point number `step`
    // (counting from 1; the point before each op counts too).
    uint32_t step;
  };

  // PCT priorities: higher runs first; ties go to the lower thread index.
  std::array<uint8_t, Program::kMaxThreads> priorities{};
  std::vector<ChangePoint> change_points;
  // More schedule points than this in one run is a hang (livelock).
  uint32_t step_budget = 200000;
};

// Decodes the first kEncodedSize bytes (missing bytes read as 0). Every input
// decodes to a valid schedule.
Schedule DecodeSchedule(absl::Span<const uint8_t> bytes);

// Runs `program` under `schedule`, joins every thread, and checks the
// oracles: owner stamps on every op, stats invariants at every quiescent
// point (no thread inside an op), the final stats, and hangs.
void RunScheduled(const Program& program, const Schedule& schedule);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_SCHEDULED_H_
