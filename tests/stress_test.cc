// Multi-threaded stress: random op programs on real threads, through the same
// interpreter the fuzzers use (owner stamps, stats invariants), while other
// threads flush, gc, create and destroy pools. Meant for --config=asan and
// --config=tsan as much as for plain builds.

#include <cstdint>

#include "fuzz/free_running.h"
#include "fuzz/op_program.h"
#include "gtest/gtest.h"
#include "pool/pool.h"

namespace poolguard::fuzz {
namespace {

using K = OpKind;

TEST(StressTest, RandomProgramsOnFourThreads) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    RandomProgramOptions options;
    options.threads = 4;
    options.ops_per_thread = 1500;
    RunFreeRunning(RandomProgram(seed, options));
  }
}

TEST(StressTest, AllocFreeWhileAnotherThreadFlushesGcsCreatesAndDestroys) {
  constexpr uint32_t kUse =
      KindBit(K::kAlloc) | KindBit(K::kFree) | KindBit(K::kWriteStamp) | KindBit(K::kCheckStamp);
  constexpr uint32_t kChurn = KindBit(K::kFlush) | KindBit(K::kGcAll) | KindBit(K::kCreatePool) |
                              KindBit(K::kDestroyPool) | KindBit(K::kAlloc) | KindBit(K::kFree);
  for (uint64_t seed = 100; seed < 106; ++seed) {
    RandomProgramOptions options;
    options.threads = 4;
    options.ops_per_thread = 3000;
    options.kinds_per_thread = {kUse, kUse, kUse, kChurn};
    RunFreeRunning(RandomProgram(seed, options));
  }
}

TEST(StressTest, TwoThreadsHammerOneSharedPool) {
  // Only allocs and frees: the tightest loop on one head, so that claims,
  // pushes and (with the limited pool) max_objects races meet most often.
  constexpr uint32_t kHammer = KindBit(K::kAlloc) | KindBit(K::kFree);
  RandomProgramOptions options;
  options.threads = 2;
  options.ops_per_thread = 20000;
  options.kinds_per_thread = {kHammer, kHammer};
  RunFreeRunning(RandomProgram(7, options));
}

}  // namespace
}  // namespace poolguard::fuzz
