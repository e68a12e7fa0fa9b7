// UAF mode (--//pool:debug=uaf, the _uaf variant): every object has pages of
// its own and they are unmapped as soon as it is freed, so an access to a
// freed object faults at the access (HAProxy's DEBUG_UAF).

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "pool/debug.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

std::unique_ptr<Pool> MakePool(std::string name, size_t object_size) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = object_size;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

bool IsMapped(const void* address) {
  const long page = sysconf(_SC_PAGESIZE);
  void* start = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(address) & ~(page - 1));
  unsigned char vec;
  return mincore(start, 1, &vec) == 0;
}

TEST(UafModeTest, IsOn) {
  EXPECT_TRUE(DebugModeEnabled());
  EXPECT_TRUE(UafModeEnabled());
}

TEST(UafModeTest, EachObjectEndsItsOwnPagesAndIsUnmappedOnFree) {
  std::unique_ptr<Pool> pool = MakePool("uaf", 64);
  const uintptr_t page = sysconf(_SC_PAGESIZE);
  void* a = pool->Alloc();
  void* b = pool->Alloc();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // The object ends where its pages end: an overrun faults too.
  EXPECT_EQ((reinterpret_cast<uintptr_t>(a) + 64) % page, 0u);
  EXPECT_NE(reinterpret_cast<uintptr_t>(a) / page, reinterpret_cast<uintptr_t>(b) / page);
  std::memset(a, 1, 64);
  pool->Free(a);
  EXPECT_FALSE(IsMapped(a));
  EXPECT_TRUE(IsMapped(b));
  pool->Free(b);
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.allocated, 0u);  // Nothing cached.
  EXPECT_EQ(stats.failed, 0u);
}

using UafModeDeathTest = ::testing::Test;

void WriteAfterFree() {
  std::unique_ptr<Pool> pool = MakePool("sessions", 96);
  auto* object = static_cast<volatile char*>(pool->Alloc());
  pool->Free(const_cast<char*>(object));
  object[8] = 'x';
  std::fprintf(stderr, "the write did not fault\n");
  std::exit(0);
}

TEST(UafModeDeathTest, WriteAfterFreeFaultsAtTheWrite) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if defined(__has_feature) && (__has_feature(address_sanitizer) || __has_feature(thread_sanitizer))
  // The sanitizer's SEGV handler reports the fault, then exits.
  EXPECT_DEATH(WriteAfterFree(), "SEGV on unknown address");
#else
  EXPECT_EXIT(WriteAfterFree(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

TEST(UafModeDeathTest, DoubleFreeIsReportedNotAFault) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("sessions", 96);
        void* object = pool->Alloc();
        pool->Free(object);
        pool->Free(object);
      },
      "free of 0x[0-9a-f]+ in pool 'sessions': a pointer no pool handed out \\(or one "
      "already released");
}

}  // namespace
}  // namespace poolguard
