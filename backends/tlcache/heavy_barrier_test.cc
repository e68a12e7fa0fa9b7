// The heavy barrier on its own: membarrier() where the kernel has it; a
// failure (injected, as a seccomp filter or ENOMEM would cause it) switches
// to fenced mode once, through the fallback barrier, for as long as the
// injection is set; and a fallback that fails too aborts, naming both
// errors.

#include "backends/tlcache/heavy_barrier.h"

#include <cerrno>

#include "gtest/gtest.h"
#include "pool/failure_injection.h"

namespace poolguard::internal {
namespace {

TEST(HeavyBarrierTest, MembarrierFailureSwitchesToFencesThroughTheFallbackWhileInjected) {
  // This machine's kernel has expedited membarrier() (Linux >= 4.14); where
  // it does not, the process is fenced from the start and the switch below
  // never happens.
  const bool fenced_from_start = OwnersMustFence();
  EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kDone);
  const uint64_t fallbacks = FallbackBarriersForTesting();
  SetSystemCallFailure(SystemCall::kMembarrier, EPERM);
  if (!fenced_from_start) {
    EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kNeedsFallback);
    EXPECT_TRUE(OwnersMustFence());
    FallbackBarrier();
    EXPECT_EQ(FallbackBarriersForTesting(), fallbacks + 1);
  }
  // Fenced from now on: a fence is all a drainer needs, whatever membarrier()
  // would say.
  EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kDone);
  EXPECT_TRUE(OwnersMustFence());
  EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kDone);
  // The injection ends, and with it the fenced mode it caused: membarrier()
  // works here, so windows are unfenced again (where the kernel has no
  // membarrier(), the process stays fenced).
  SetSystemCallFailure(SystemCall::kMembarrier, 0);
  EXPECT_EQ(OwnersMustFence(), fenced_from_start);
  EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kDone);
  EXPECT_EQ(FallbackBarriersForTesting(), fallbacks + (fenced_from_start ? 0 : 1));
  // And a second injected failure switches again, through the fallback.
  SetSystemCallFailure(SystemCall::kMembarrier, ENOSYS);
  if (!fenced_from_start) {
    EXPECT_EQ(HeavyBarrier(), HeavyBarrierResult::kNeedsFallback);
    FallbackBarrier();
    EXPECT_TRUE(OwnersMustFence());
  }
  SetSystemCallFailure(SystemCall::kMembarrier, 0);
}

// (gtest runs death tests first, before the test above switches the mode.)
TEST(HeavyBarrierDeathTest, AFailingFallbackAbortsNamingBothErrors) {
  if (OwnersMustFence()) GTEST_SKIP() << "no membarrier() here: nothing falls back";
  EXPECT_DEATH(
      {
        SetSystemCallFailure(SystemCall::kMembarrier, EPERM);
        SetSystemCallFailure(SystemCall::kMprotect, ENOMEM);
        if (HeavyBarrier() == HeavyBarrierResult::kNeedsFallback) FallbackBarrier();
      },
      "no barrier can drain thread caches safely.*Operation not permitted.*Cannot allocate");
}

}  // namespace
}  // namespace poolguard::internal
