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

#include <cstddef>

#include "fuzz/op_program.h"
#include "fuzz/schedule.h"

namespace poolguard::fuzz {

// Runs `program` under `schedule`, joins every thread, and checks the
// oracles: owner stamps on every op, stats invariants at every quiescent
// point (no thread inside an op), the final stats, and hangs.
void RunScheduled(const Program& program, const Schedule& schedule);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_SCHEDULED_H_
