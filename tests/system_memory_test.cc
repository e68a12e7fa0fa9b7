// The system memory layer's ASan helpers are precise: what they make
// accessible never reaches past the live block an object is, so a slot too
// small for its free-list link, and a link read from a released block, are
// ASan reports. (Backend-independent; meaningful under --config=asan, where
// POOLGUARD_ASAN is on; elsewhere the tests skip.)

#include "pool/system_memory.h"

#include <cstddef>

#include "gtest/gtest.h"

namespace poolguard::internal {
namespace {

#if defined(POOLGUARD_ASAN)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

TEST(SystemMemoryAsanTest, ALinkWrittenIntoASlotSmallerThanALinkIsReported) {
  if (!kAsan) GTEST_SKIP() << "needs AddressSanitizer";
  EXPECT_DEATH(
      {
        void* block = AllocateFromSystem(2, 1);
        PoisonObject(block, 2);
        WriteLink(block, nullptr);  // 8 bytes into a 2-byte block.
      },
      "heap-buffer-overflow");
}

TEST(SystemMemoryAsanTest, ALinkReadFromAReleasedBlockIsReported) {
  if (!kAsan) GTEST_SKIP() << "needs AddressSanitizer";
  EXPECT_DEATH(
      {
        void* block = AllocateFromSystem(16, 8);
        ReleaseToSystem(block, 16, 8);
        void* volatile link = ReadLink(block);  // volatile: the read stays.
        static_cast<void>(link);
      },
      "heap-use-after-free");
}

#if defined(POOLGUARD_ASAN)
TEST(SystemMemoryAsanTest, UnpoisoningStopsAtTheEndOfTheBlock) {
  auto* block = static_cast<unsigned char*>(AllocateFromSystem(16, 8));
  PoisonObject(block, 16);
  EXPECT_TRUE(__asan_address_is_poisoned(block));
  UnpoisonObject(block, 64);  // More than the block: only the block opens.
  EXPECT_FALSE(__asan_address_is_poisoned(block + 15));
  EXPECT_TRUE(__asan_address_is_poisoned(block + 16));
  PoisonObject(block, 16);
  UnpoisonLinkIfLive(block);
  EXPECT_FALSE(__asan_address_is_poisoned(block + 7));
  EXPECT_TRUE(__asan_address_is_poisoned(block + 8));
  ReleaseToSystem(block, 16, 8);
}
#endif

TEST(SystemMemoryTest, LinksRoundTrip) {
  void* block = AllocateFromSystem(16, 8);
  ASSERT_NE(block, nullptr);
  PoisonObject(block, 16);
  WriteLink(block, block);
  EXPECT_EQ(ReadLink(block), block);
  UnpoisonObject(block, 16);
  ReleaseToSystem(block, 16, 8);
}

}  // namespace
}  // namespace poolguard::internal
