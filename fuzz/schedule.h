// A schedule for the scheduled executor (fuzz/scheduled.h), decoded from
// fuzzer bytes. Independent of any backend.

#ifndef POOLGUARD_FUZZ_SCHEDULE_H_
#define POOLGUARD_FUZZ_SCHEDULE_H_

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

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_SCHEDULE_H_
