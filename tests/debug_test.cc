// Debug mode (pool/debug.h): each misuse provoked on purpose, detected and
// reported naming the pool, the object's call sites and the offending call.
// Built against the _debug variant of every backend (//pool:pool_<b>_debug).

#include "pool/debug.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pool/pool.h"
#include "pool/system_memory.h"

namespace poolguard {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Pool> MakePool(std::string name, size_t object_size, size_t alignment = 16) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = object_size;
  options.alignment = alignment;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

// A write the compiler and ASan cannot see coming: what a stray pointer in
// uninstrumented code, or a device, does. (Under ASan a plain write to a
// freed object is already reported by ASan itself, before debug mode could.)
void StrayWrite(void* object, size_t offset, unsigned char value) {
  auto* byte = static_cast<unsigned char*>(object) + offset;
  internal::UnpoisonObject(byte, 1);
  *static_cast<volatile unsigned char*>(byte) = value;
}

TEST(DebugModeTest, IsOn) { EXPECT_TRUE(DebugModeEnabled()); }

TEST(DebugModeTest, CorrectUseReportsNothing) {
  std::unique_ptr<Pool> pool = MakePool("fine", 40);
  for (size_t alignment = 8; alignment <= 256; alignment *= 2) {
    std::unique_ptr<Pool> aligned = MakePool("aligned", 24, alignment);
    std::vector<void*> objects;
    for (int i = 0; i < 20; ++i) {
      void* object = aligned->Alloc();
      ASSERT_NE(object, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(object) % alignment, 0u);
      std::memset(object, i, 24);
      objects.push_back(object);
    }
    for (void* object : objects) aligned->Free(object);
    for (int i = 0; i < 20; ++i) objects[i] = aligned->Alloc();
    for (void* object : objects) aligned->Free(object);
    aligned->Flush();
  }
  pool->Free(pool->Alloc());
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.allocated, 1u);
  EXPECT_EQ(stats.free, 1u);
}

using DebugModeDeathTest = ::testing::Test;

TEST(DebugModeDeathTest, DoubleFree) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("session", 96);
        void* object = pool->Alloc();
        pool->Free(object);
        pool->Free(object);
      },
      "double free of 0x[0-9a-f]+ in pool 'session' \\(last alloc at "
      "tests/debug_test.cc:[0-9]+, last free at tests/debug_test.cc:[0-9]+; this free at "
      "tests/debug_test.cc:[0-9]+\\)");
}

TEST(DebugModeDeathTest, FreeOfAPointerNoPoolHandedOut) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("buffers", 64);
        alignas(16) char on_stack[256] = {};
        pool->Free(on_stack + 128);
      },
      "free of 0x[0-9a-f]+ in pool 'buffers': a pointer no pool handed out.*this free at "
      "tests/debug_test.cc:[0-9]+");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("buffers", 64);
        void* object = pool->Alloc();
        pool->Free(static_cast<char*>(object) + 16);  // Inside an object.
      },
      "free of 0x[0-9a-f]+ in pool 'buffers': a pointer no pool handed out");
}

TEST(DebugModeDeathTest, FreeIntoTheWrongPool) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> sessions = MakePool("sessions", 64);
        std::unique_ptr<Pool> buffers = MakePool("buffers", 64);
        void* object = sessions->Alloc();
        buffers->Free(object);
      },
      "free into the wrong pool: 0x[0-9a-f]+ belongs to pool 'sessions', freed into pool "
      "'buffers' \\(last alloc at tests/debug_test.cc:[0-9]+; this free at "
      "tests/debug_test.cc:[0-9]+\\)");
}

TEST(DebugModeDeathTest, WriteToAFreedObjectIsFoundByTheNextAlloc) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("requests", 48);
        void* object = pool->Alloc();
        pool->Free(object);
        StrayWrite(object, 20, 0x42);
        pool->Alloc();
      },
      "write to freed object 0x[0-9a-f]+ in pool 'requests': byte 20 is 0x42, not the free "
      "fill 0xdb \\(last alloc at tests/debug_test.cc:[0-9]+, last free at "
      "tests/debug_test.cc:[0-9]+; found by the alloc at tests/debug_test.cc:[0-9]+\\)");
}

// A user hook instead of abort: each misuse is reported once, the offending
// Free() does nothing, and the pool's stats stay exact.
std::vector<MisuseReport>* g_reports = nullptr;
void Record(const MisuseReport& report) { g_reports->push_back(report); }

TEST(DebugModeTest, AHandlerThatReturnsSeesEachMisuseAndTheStatsStayExact) {
  std::vector<MisuseReport> reports;
  g_reports = &reports;
  MisuseHandler previous = SetMisuseHandler(&Record);
  {
    std::unique_ptr<Pool> a = MakePool("a", 32);
    std::unique_ptr<Pool> b = MakePool("b", 32);
    void* x = a->Alloc();
    void* y = a->Alloc();
    a->Free(x);
    a->Free(x);  // double free
    int local = 0;
    a->Free(&local);  // foreign
    b->Free(y);       // wrong pool
    StrayWrite(x, 0, 1);
    void* again = a->Alloc();  // write after free (x comes back)
    EXPECT_EQ(again, x);
    PoolStats stats = a->Stats();
    EXPECT_EQ(stats.used, 2u);
    EXPECT_EQ(stats.free, 0u);
    EXPECT_EQ(b->Stats().allocated, 0u);
    a->Free(again);
    a->Free(y);
  }
  SetMisuseHandler(previous);
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0].misuse, Misuse::kDoubleFree);
  EXPECT_EQ(reports[1].misuse, Misuse::kForeignPointer);
  EXPECT_EQ(reports[2].misuse, Misuse::kWrongPool);
  EXPECT_EQ(reports[3].misuse, Misuse::kWriteAfterFree);
  EXPECT_EQ(reports[2].pool, "b");
  EXPECT_THAT(reports[3].message, HasSubstr("pool 'a'"));
}

}  // namespace
}  // namespace poolguard
