// The op language: every byte string decodes to a valid, bounded program.

#include "fuzz/op_program.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "fuzz/schedule.h"
#include "gtest/gtest.h"

namespace poolguard::fuzz {
namespace {

void ExpectValid(const Program& program) {
  ASSERT_GE(program.threads.size(), Program::kMinThreads);
  ASSERT_LE(program.threads.size(), Program::kMaxThreads);
  for (const std::vector<Op>& ops : program.threads) {
    EXPECT_LE(ops.size(), Program::kMaxOpsPerThread);
    for (const Op& op : ops) EXPECT_LT(op.kind, OpKind::kNumKinds);
  }
}

TEST(DecodeProgramTest, EmptyInputIsTwoIdleThreads) {
  const Program program = DecodeProgram({});
  ExpectValid(program);
  EXPECT_EQ(program.threads.size(), 2u);
  EXPECT_TRUE(program.threads[0].empty());
}

TEST(DecodeProgramTest, EveryRandomInputIsValid) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> bytes(rng() % 600);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    ExpectValid(DecodeProgram(bytes));
    const Schedule schedule = DecodeSchedule(bytes);
    EXPECT_LE(schedule.change_points.size(), Schedule::kMaxChangePoints);
  }
}

TEST(DecodeScheduleTest, ModeBytesPickChangePointsOrRandomPreemption) {
  // Mode 2: two change points.
  Schedule schedule = DecodeSchedule(std::vector<uint8_t>{3, 2, 1, 0, 2, 0x09, 4, 0x2c, 0});
  ASSERT_EQ(schedule.change_points.size(), 2u);
  EXPECT_EQ(schedule.change_points[0].thread, 1u);
  EXPECT_EQ(schedule.change_points[0].kind, 2);
  EXPECT_EQ(schedule.change_points[0].occurrence, 5u);
  EXPECT_EQ(schedule.change_points[1].kind, Schedule::kOpBoundary);
  EXPECT_EQ(schedule.random_preemption_odds, 0u);
  // Mode 128 | 3 << 2: random preemption at odds 1/16, the six bytes its seed.
  schedule = DecodeSchedule(std::vector<uint8_t>{3, 2, 1, 0, 128 | 3 << 2, 1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(schedule.change_points.empty());
  EXPECT_EQ(schedule.random_preemption_odds, 16u);
  EXPECT_EQ(schedule.random_seed, 0x010203040506u);
  EXPECT_FALSE(schedule.store_buffers);
  // Bit 6 turns store buffers on, in either mode, and changes nothing else.
  schedule =
      DecodeSchedule(std::vector<uint8_t>{3, 2, 1, 0, 0x40 | 128 | 3 << 2, 1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(schedule.store_buffers);
  EXPECT_EQ(schedule.random_preemption_odds, 16u);
  schedule = DecodeSchedule(std::vector<uint8_t>{3, 2, 1, 0, 0x40 | 2, 0x09, 4, 0x2c, 0});
  EXPECT_TRUE(schedule.store_buffers);
  EXPECT_EQ(schedule.change_points.size(), 2u);
}

// Whether two schedules take different interleavings of the same program.
bool SameSchedule(const Schedule& a, const Schedule& b) {
  if (a.priorities != b.priorities || a.random_preemption_odds != b.random_preemption_odds ||
      a.random_seed != b.random_seed || a.store_buffers != b.store_buffers ||
      a.change_points.size() != b.change_points.size()) {
    return false;
  }
  for (size_t i = 0; i < a.change_points.size(); ++i) {
    const Schedule::ChangePoint& x = a.change_points[i];
    const Schedule::ChangePoint& y = b.change_points[i];
    if (x.thread != y.thread || x.kind != y.kind || x.occurrence != y.occurrence) return false;
  }
  return true;
}

TEST(MutateScheduleHeaderTest, ChangesTheScheduleAloneAndReachesEveryPart) {
  const std::vector<uint8_t> random_mode = {3, 2, 1, 0, 128 | 2 << 2, 1, 2, 3, 4, 5, 6, 0x33, 0x44};
  const std::vector<uint8_t> change_points = {1, 3, 0, 2, 2, 0x09, 4, 0x2c, 6, 0, 0, 0x33, 0x44};
  bool mode_switched = false, odds_changed = false, seed_changed = false;
  bool occurrence_changed = false, count_changed = false, point_changed = false;
  bool buffers_switched = false;
  for (const auto& original : {random_mode, change_points}) {
    const Schedule before = DecodeSchedule(original);
    int different = 0;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      std::vector<uint8_t> bytes = original;
      MutateScheduleHeader(absl::MakeSpan(bytes).first(Schedule::kEncodedSize), seed);
      // The program after the header is untouched.
      EXPECT_EQ(bytes[11], 0x33);
      EXPECT_EQ(bytes[12], 0x44);
      // Deterministic: the same seed makes the same change.
      std::vector<uint8_t> again = original;
      MutateScheduleHeader(absl::MakeSpan(again).first(Schedule::kEncodedSize), seed);
      EXPECT_EQ(bytes, again);
      const Schedule after = DecodeSchedule(bytes);
      if (!SameSchedule(before, after)) ++different;
      mode_switched |= (before.random_preemption_odds == 0) != (after.random_preemption_odds == 0);
      buffers_switched |= before.store_buffers != after.store_buffers;
      if (before.random_preemption_odds != 0 && after.random_preemption_odds != 0) {
        odds_changed |= before.random_preemption_odds != after.random_preemption_odds;
        seed_changed |= before.random_seed != after.random_seed;
      }
      if (before.random_preemption_odds == 0 && after.random_preemption_odds == 0) {
        count_changed |= before.change_points.size() != after.change_points.size();
        if (before.change_points.size() == after.change_points.size()) {
          for (size_t i = 0; i < after.change_points.size(); ++i) {
            occurrence_changed |=
                before.change_points[i].occurrence != after.change_points[i].occurrence;
            point_changed |= before.change_points[i].kind != after.change_points[i].kind ||
                             before.change_points[i].thread != after.change_points[i].thread;
          }
        }
      }
    }
    // Nearly every step is another interleaving (a few redraw a byte to the
    // value it had, or a priority no thread of the program has).
    EXPECT_GT(different, 300);
  }
  EXPECT_TRUE(mode_switched);
  EXPECT_TRUE(buffers_switched);
  EXPECT_TRUE(odds_changed);
  EXPECT_TRUE(seed_changed);
  EXPECT_TRUE(count_changed);
  EXPECT_TRUE(occurrence_changed);
  EXPECT_TRUE(point_changed);
}

TEST(MutateScheduleHeaderTest, AShortInputIsLeftAlone) {
  std::vector<uint8_t> bytes = {1, 2, 3};
  MutateScheduleHeader(absl::MakeSpan(bytes), 7);
  EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3}));
}

TEST(DecodeProgramTest, DecodesThreadKindAndArguments) {
  // 3 threads; thread 1 frees slot 5; thread 2 flushes pool 1; thread 0 gcs;
  // thread 2 creates private pool 3 of shape 5; thread 1 forks (code 14,
  // arg 255); thread 0 reads stats of pool 2 (code 14, arg 2 * 8 + 0).
  const std::vector<uint8_t> bytes = {1,    0x11, 5,    0x24, 1,    0x05, 9,
                                      0x26, 0x2b, 0x1e, 0xff, 0x0e, 0x10};
  size_t consumed = 0;
  const Program program = DecodeProgram(bytes, &consumed);
  EXPECT_EQ(consumed, bytes.size());
  ASSERT_EQ(program.threads.size(), 3u);
  ASSERT_EQ(program.threads[1].size(), 2u);
  EXPECT_EQ(program.threads[1][0].kind, OpKind::kFree);
  EXPECT_EQ(program.threads[1][0].arg, 5);
  EXPECT_EQ(program.threads[1][1].kind, OpKind::kFork);
  EXPECT_EQ(program.threads[1][1].arg, 0);
  ASSERT_EQ(program.threads[2].size(), 2u);
  EXPECT_EQ(program.threads[2][0].kind, OpKind::kFlush);
  EXPECT_EQ(program.threads[2][1].kind, OpKind::kCreatePool);
  EXPECT_EQ(program.threads[2][1].arg, 0x2b);
  ASSERT_EQ(program.threads[0].size(), 2u);
  EXPECT_EQ(program.threads[0][0].kind, OpKind::kGcAll);
  EXPECT_EQ(program.threads[0][1].kind, OpKind::kStats);
  EXPECT_EQ(program.threads[0][1].arg, 2);
}

TEST(DecodeProgramTest, VersionOneInputsKeepTheirKinds) {
  // Version 1: head = (thread << 4) | kind, kinds 0-8 (alloc .. fail_next).
  std::vector<uint8_t> bytes = {2};
  for (uint8_t kind = 0; kind < 9; ++kind) {
    bytes.push_back(static_cast<uint8_t>((kind % 4) << 4 | kind));
    bytes.push_back(static_cast<uint8_t>(kind * 7));
  }
  const Program program = DecodeProgram(bytes);
  ASSERT_EQ(program.threads.size(), 4u);
  for (uint8_t kind = 0; kind < 9; ++kind) {
    const std::vector<Op>& ops = program.threads[kind % 4];
    const Op& op = ops[kind / 4];
    EXPECT_EQ(op.kind, static_cast<OpKind>(kind));
    EXPECT_EQ(op.arg, kind * 7);
  }
}

TEST(DecodeProgramTest, CodeEightWithAnArgOfSevenModEightFailsMembarrier) {
  // Thread 0: fail_next with arg 7, 15, 23 and 255 (all 7 mod 8), then 5 and
  // 8. The arg is arg / 8 % 2: 1 makes membarrier() work again.
  const std::vector<uint8_t> bytes = {0, 0x08, 7, 0x08, 15, 0x08, 23, 0x08, 255, 0x08, 5, 0x08, 8};
  const Program program = DecodeProgram(bytes);
  ASSERT_EQ(program.threads[0].size(), 6u);
  const uint8_t args[] = {0, 1, 0, 1};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(program.threads[0][i].kind, OpKind::kFailMembarrier);
    EXPECT_EQ(program.threads[0][i].arg, args[i]);
  }
  EXPECT_EQ(program.threads[0][4].kind, OpKind::kFailNextSystemAlloc);
  EXPECT_EQ(program.threads[0][5].kind, OpKind::kFailNextSystemAlloc);
  const Program again = DecodeProgram(EncodeProgram(program));
  ASSERT_EQ(again.threads[0].size(), 6u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(again.threads[0][i].kind, OpKind::kFailMembarrier);
    EXPECT_EQ(again.threads[0][i].arg, args[i]);
  }
}

TEST(DecodeProgramTest, CodeEightWithAnArgOfSixModEightLimitsBytes) {
  // Thread 0: fail_next with arg 6, 14 and 254 (all 6 mod 8), then 5.
  const std::vector<uint8_t> bytes = {0, 0x08, 6, 0x08, 14, 0x08, 254, 0x08, 5};
  const Program program = DecodeProgram(bytes);
  ASSERT_EQ(program.threads[0].size(), 4u);
  const uint8_t pages[] = {0, 1, 31};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(program.threads[0][i].kind, OpKind::kLimitBytes);
    EXPECT_EQ(program.threads[0][i].arg, pages[i]);
  }
  EXPECT_EQ(program.threads[0][3].kind, OpKind::kFailNextSystemAlloc);
  EXPECT_EQ(EncodeProgram(program), bytes);
}

TEST(DecodeProgramTest, AnOddByteAtTheEndIsIgnored) {
  const std::vector<uint8_t> bytes = {0, 0x0b, 2, 0x01};
  size_t consumed = 0;
  const Program program = DecodeProgram(bytes, &consumed);
  EXPECT_EQ(consumed, 3u);
  ASSERT_EQ(program.threads[0].size(), 1u);
  EXPECT_EQ(program.threads[0][0].kind, OpKind::kAllocBulk);
}

TEST(DecodeProgramTest, EncodeIsTheInverseOfDecode) {
  RandomProgramOptions options;
  options.threads = 4;
  options.ops_per_thread = Program::kMaxOpsPerThread;
  options.kinds_per_thread = {kAllKinds, kAllKinds, kAllKinds, kAllKinds};
  for (uint64_t seed = 1; seed < 50; ++seed) {
    const Program program = RandomProgram(seed, options);
    const Program again = DecodeProgram(EncodeProgram(program));
    EXPECT_EQ(ProgramToString(again), ProgramToString(program)) << seed;
  }
}

TEST(OpsTest, BulkCountsReachPastTheLargestCacheAndExitsDecode) {
  size_t largest = 0;
  for (int code = 0; code < 256; ++code) largest = std::max(largest, BulkCount(code));
  EXPECT_GE(largest, 2 * 1024u + 512u);  // Twice tlcache's largest cache, plus a batch.
  EXPECT_EQ(DecodeExit(0).phase, ExitPhase::kReturn);
  EXPECT_EQ(DecodeExit(0).ops_in_destructor, 0u);
  EXPECT_EQ(DecodeExit(1).phase, ExitPhase::kThreadLocalDestructor);
  EXPECT_EQ(DecodeExit(2 + 3 * 2).phase, ExitPhase::kKeyDestructor);
  EXPECT_EQ(DecodeExit(2 + 3 * 2).ops_in_destructor, 2u);
  EXPECT_FALSE(DecodeExit(2 + 3 * 2).in_last_round);
  // (arg / 12) % 2: a key destructor's ops in glibc's last round.
  EXPECT_TRUE(DecodeExit(12 + 2 + 3 * 2).in_last_round);
  EXPECT_EQ(DecodeExit(12 + 2 + 3 * 2).ops_in_destructor, 2u);
  EXPECT_FALSE(DecodeExit(12 + 1 + 3 * 2).in_last_round);  // thread_local: no rounds
  for (int k = 0; k < static_cast<int>(OpKind::kNumKinds); ++k) {
    EXPECT_NE(OpKindName(static_cast<OpKind>(k)), "?") << k;
  }
}

TEST(DecodeProgramTest, OpsBeyondAThreadsLimitAreDropped) {
  std::vector<uint8_t> bytes = {0};
  for (size_t i = 0; i < 3 * Program::kMaxOpsPerThread; ++i) {
    bytes.push_back(0x00);  // thread 0, alloc
    bytes.push_back(0);
  }
  const Program program = DecodeProgram(bytes);
  EXPECT_EQ(program.threads[0].size(), Program::kMaxOpsPerThread);
}

TEST(RandomProgramTest, SameSeedSameProgram) {
  RandomProgramOptions options;
  options.threads = 3;
  options.ops_per_thread = 100;
  EXPECT_EQ(ProgramToString(RandomProgram(9, options), 1000),
            ProgramToString(RandomProgram(9, options), 1000));
  EXPECT_NE(ProgramToString(RandomProgram(9, options), 1000),
            ProgramToString(RandomProgram(10, options), 1000));
}

TEST(RandomProgramTest, KindsPerThreadAreHonoured) {
  RandomProgramOptions options;
  options.threads = 2;
  options.ops_per_thread = 200;
  options.kinds_per_thread = {KindBit(OpKind::kGcAll), KindBit(OpKind::kAlloc)};
  const Program program = RandomProgram(1, options);
  for (const Op& op : program.threads[0]) EXPECT_EQ(op.kind, OpKind::kGcAll);
  for (const Op& op : program.threads[1]) EXPECT_EQ(op.kind, OpKind::kAlloc);
}

}  // namespace
}  // namespace poolguard::fuzz
