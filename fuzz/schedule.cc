#include "fuzz/schedule.h"

#include "pool/splitmix64.h"

namespace poolguard::fuzz {

Schedule DecodeSchedule(absl::Span<const uint8_t> bytes) {
  auto byte = [&](size_t i) -> uint8_t { return i < bytes.size() ? bytes[i] : 0; };
  Schedule schedule;
  size_t pos = 0;
  for (uint8_t& priority : schedule.priorities) priority = byte(pos++);
  const uint8_t mode = byte(pos++);
  schedule.store_buffers = (mode & Schedule::kStoreBuffersBit) != 0;
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

void MutateScheduleHeader(absl::Span<uint8_t> header, uint64_t seed) {
  if (header.size() < Schedule::kEncodedSize) return;
  auto next = [&seed] { return internal::SplitMix64(seed); };
  constexpr size_t kMode = Program::kMaxThreads;
  constexpr size_t kPoints = kMode + 1;  // two bytes per change point, or the seed
  uint8_t& mode = header[kMode];
  const uint64_t what = next() % 17;
  if (what == 0) {  // the other mode
    mode ^= 0x80;
  } else if (what == 16) {  // store buffers on or off
    mode ^= Schedule::kStoreBuffersBit;
  } else if (what == 1) {  // one priority
    header[next() % Program::kMaxThreads] = static_cast<uint8_t>(next());
  } else if (mode >= 128) {
    if (what <= 3) {  // odds one step rarer or commoner: (mode >> 2) % 8
      const uint8_t odds = static_cast<uint8_t>(((mode >> 2) + (next() % 2 == 0 ? 1 : 7)) % 8);
      mode = static_cast<uint8_t>((mode & ~0x1c) | odds << 2);
    } else {  // a new seed: another interleaving at the same odds
      header[kPoints + next() % (Schedule::kMaxChangePoints * 2)] = static_cast<uint8_t>(next());
    }
  } else {
    const size_t points = mode % (Schedule::kMaxChangePoints + 1);
    if (what <= 3 || points == 0) {  // one change point more or less
      const uint8_t count = static_cast<uint8_t>((points + (next() % 2 == 0 ? 1 : 3)) % 4);
      mode = static_cast<uint8_t>((mode & ~0x03) | count);
    } else {
      const size_t point = kPoints + 2 * (next() % points);
      if (what <= 6) {  // its thread (bits 0-1) or kind (bits 2-7)
        header[point] = static_cast<uint8_t>(
            next() % 2 == 0 ? (header[point] & ~0x03) | (next() & 0x03)
                            : (header[point] & 0x03) | (next() % Schedule::kPointKinds) << 2);
      } else {  // its occurrence, a few points earlier or later
        const int delta = 1 + static_cast<int>(next() % 8);
        header[point + 1] =
            static_cast<uint8_t>(header[point + 1] + (next() % 2 == 0 ? delta : -delta));
      }
    }
  }
}

}  // namespace poolguard::fuzz
