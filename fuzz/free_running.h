// The free-running executor: a program's threads on real OS threads, released
// together from a barrier, for ThreadSanitizer to watch real parallel runs.
// The interleaving is the machine's, so a run does not replay; the scheduled
// executor is the replayable one.

#ifndef POOLGUARD_FUZZ_FREE_RUNNING_H_
#define POOLGUARD_FUZZ_FREE_RUNNING_H_

#include "fuzz/op_program.h"

namespace poolguard::fuzz {

// Runs `program` to the end, joins every thread, and checks the final
// oracles (see World). Aborts with a report on any oracle failure.
void RunFreeRunning(const Program& program);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_FREE_RUNNING_H_
