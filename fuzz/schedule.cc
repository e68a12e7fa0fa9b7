#include "fuzz/schedule.h"

namespace poolguard::fuzz {

Schedule DecodeSchedule(absl::Span<const uint8_t> bytes) {
  auto byte = [&](size_t i) -> uint8_t { return i < bytes.size() ? bytes[i] : 0; };
  Schedule schedule;
  size_t pos = 0;
  for (uint8_t& priority : schedule.priorities) priority = byte(pos++);
  const uint8_t mode = byte(pos++);
  if (mode >= 128) {
    schedule.random_preemption_odds = 2u << ((mode >> 2) % 8);
    for (size_t i = 0; i < Schedule::kMaxChangePoints * 2; ++i) {
      schedule.random_seed = schedule.random_seed << 8 | byte(pos + i);
    }
    return schedule;
  }
  const size_t changes = mode % (Schedule::kMaxChangePoints + 1);
  for (size_t i = 0; i < Schedule::kMaxChangePoints; ++i, pos += 2) {
    if (i < changes) {
      schedule.change_points.push_back({byte(pos) % Program::kMaxThreads,
                                        (byte(pos) >> 2) % Schedule::kPointKinds,
                                        uint32_t{byte(pos + 1)} + 1});
    }
  }
  return schedule;
}

}  // namespace poolguard::fuzz
