// The fuzz target: bytes -> op program (and, in scheduled mode, a schedule)
// -> run against the pool API with every oracle on. One source, two targets:
//   scheduled_fuzzer     PCT schedule from the input, replays exactly (ASan)
//   free_running_fuzzer  real parallel threads (TSan)
// Built per backend; see fuzz/BUILD and fuzz/fuzzers.bzl.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "fuzz/op_program.h"

#if defined(POOLGUARD_FREE_RUNNING_FUZZER)
#include "fuzz/free_running.h"
#else
#include "fuzz/scheduled.h"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> input(data, size);
#if defined(POOLGUARD_FREE_RUNNING_FUZZER)
  poolguard::fuzz::RunFreeRunning(poolguard::fuzz::DecodeProgram(input));
#else
  // The schedule comes first: a fixed-size header, then the program.
  const poolguard::fuzz::Schedule schedule = poolguard::fuzz::DecodeSchedule(input);
  const size_t header = std::min(size, poolguard::fuzz::Schedule::kEncodedSize);
  poolguard::fuzz::RunScheduled(poolguard::fuzz::DecodeProgram(input.subspan(header)),
                                schedule);
#endif
  return 0;
}
