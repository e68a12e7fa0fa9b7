// The op language: every byte string decodes to a valid, bounded program.

#include "fuzz/op_program.h"

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

TEST(DecodeProgramTest, DecodesThreadKindAndArgument) {
  // 3 threads; thread 1 frees slot 5; thread 2 flushes pool 1; thread 0 gcs.
  const std::vector<uint8_t> bytes = {1, 0x11, 5, 0x24, 1, 0x05, 9};
  size_t consumed = 0;
  const Program program = DecodeProgram(bytes, &consumed);
  EXPECT_EQ(consumed, bytes.size());
  ASSERT_EQ(program.threads.size(), 3u);
  ASSERT_EQ(program.threads[1].size(), 1u);
  EXPECT_EQ(program.threads[1][0].kind, OpKind::kFree);
  EXPECT_EQ(program.threads[1][0].arg, 5);
  ASSERT_EQ(program.threads[2].size(), 1u);
  EXPECT_EQ(program.threads[2][0].kind, OpKind::kFlush);
  ASSERT_EQ(program.threads[0].size(), 1u);
  EXPECT_EQ(program.threads[0][0].kind, OpKind::kGcAll);
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
