// Debug mode (pool/debug.h): each misuse provoked on purpose, detected and
// reported naming the pool, the object's call sites and the offending call.
// Built against the _debug variant of every backend (//pool:pool_<b>_debug).

#include "pool/debug.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
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
#if defined(POOLGUARD_ASAN)
  // The one byte only (UnpoisonObject() takes whole objects from their start).
  ASAN_UNPOISON_MEMORY_REGION(byte, 1);
#endif
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
      "[^ ]*tests/debug_test.cc:[0-9]+, last free at [^ ]*tests/debug_test.cc:[0-9]+; this free at "
      "[^ ]*tests/debug_test.cc:[0-9]+\\)");
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
      "[^ ]*tests/debug_test.cc:[0-9]+");
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
      "'buffers' \\(last alloc at [^ ]*tests/debug_test.cc:[0-9]+; this free at "
      "[^ ]*tests/debug_test.cc:[0-9]+\\)");
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
      "fill 0xdb \\(last alloc at [^ ]*tests/debug_test.cc:[0-9]+, last free at "
      "[^ ]*tests/debug_test.cc:[0-9]+; found by the alloc at [^ ]*tests/debug_test.cc:[0-9]+\\)");
}

// A user hook instead of abort: each misuse is reported once, the offending
// Free() does nothing, and the pool's stats stay exact.
// A report's views live only during the handler's call: keep copies.
struct Recorded {
  Misuse misuse;
  std::string pool;
  std::string message;
};
std::vector<Recorded>* g_reports = nullptr;
void Record(const MisuseReport& report) {
  g_reports->push_back({report.misuse, std::string(report.pool), std::string(report.message)});
}

TEST(DebugModeTest, AHandlerThatReturnsSeesEachMisuseAndTheStatsStayExact) {
  std::vector<Recorded> reports;
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

// A signal handler that calls a pool while the thread it interrupted is
// inside a pool call: debug mode reports it, naming the pool and both call
// sites, and the re-entered call does nothing. The handler below records
// what it sees in plain atomics (it runs in signal context).
std::atomic<Pool*> g_signal_pool{nullptr};
std::atomic<int> g_reentrant_reports{0};
std::atomic<int> g_signal_calls{0};
// The first report's text, copied without allocating (signal context).
char g_reentrant_message[1024];

void RecordReentrant(const MisuseReport& report) {
  if (report.misuse != Misuse::kReentrantCall) return;
  if (g_reentrant_reports.load() == 0) {
    const size_t n = std::min(report.message.size(), sizeof(g_reentrant_message) - 1);
    std::memcpy(g_reentrant_message, report.message.data(), n);
    g_reentrant_message[n] = '\0';
  }
  g_reentrant_reports.fetch_add(1);
}

void CallThePoolFromASignal(int) {
  Pool* pool = g_signal_pool.load();
  if (pool == nullptr) return;
  g_signal_calls.fetch_add(1);
  // Re-entrant when the main loop below was inside Alloc() or Free(): then
  // this Alloc() reports and returns nullptr.
  if (void* object = pool->Alloc()) pool->Free(object);
}

TEST(DebugModeTest, APoolCallReenteredFromASignalHandlerIsReported) {
  MisuseHandler previous = SetMisuseHandler(&RecordReentrant);
  std::unique_ptr<Pool> pool = MakePool("signalled", 48);
  // Warm: the loop below then never asks the system (malloc) for memory, so
  // the signal handler's report (which allocates) cannot interrupt a malloc.
  std::vector<void*> warm;
  for (int i = 0; i < 8; ++i) warm.push_back(pool->Alloc());
  for (void* object : warm) pool->Free(object);
  struct sigaction action = {};
  action.sa_handler = &CallThePoolFromASignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_action;
  ASSERT_EQ(sigaction(SIGUSR1, &action, &old_action), 0);
  g_signal_pool.store(pool.get());
  const pthread_t main_thread = pthread_self();
  std::atomic<bool> stop{false};
  std::thread signaller([&] {
    while (!stop.load()) {
      pthread_kill(main_thread, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (g_reentrant_reports.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1000; ++i) {
      void* object = pool->Alloc();
      ASSERT_NE(object, nullptr);
      pool->Free(object);
    }
  }
  stop.store(true);
  signaller.join();
  g_signal_pool.store(nullptr);
  sigaction(SIGUSR1, &old_action, nullptr);
  SetMisuseHandler(previous);
  ASSERT_GT(g_reentrant_reports.load(), 0)
      << g_signal_calls.load() << " signals, none while a pool call was in progress";
  const std::string message = g_reentrant_message;
  EXPECT_THAT(message, HasSubstr("re-entrant call"));
  EXPECT_THAT(message, HasSubstr("pool 'signalled'"));
  EXPECT_THAT(message, HasSubstr("debug_test.cc"));  // Both call sites are here.
  EXPECT_THAT(message, HasSubstr("in progress on the same thread"));
  // The re-entered calls did nothing: every object is accounted for.
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.used, 0u);
  EXPECT_EQ(stats.allocated, stats.free);
}

TEST(DebugModeDeathTest, AReentrantCallIsReportedByDefaultWithoutAllocating) {
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("signalled-default", 48);
        // Warm, as above: a signal that lands just before a call begins (not
        // re-entrant) must not find the pool empty and malloc inside the
        // handler, which TSan reports as a signal-unsafe call before the
        // re-entrant call this test waits for.
        void* warm[8];
        for (void*& object : warm) object = pool->Alloc();
        for (void* object : warm) pool->Free(object);
        struct sigaction action = {};
        action.sa_handler = &CallThePoolFromASignal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGUSR1, &action, nullptr);
        g_signal_pool.store(pool.get());
        const pthread_t main_thread = pthread_self();
        std::thread([main_thread] {
          for (;;) {
            pthread_kill(main_thread, SIGUSR1);
            std::this_thread::sleep_for(std::chrono::microseconds(50));
          }
        }).detach();
        for (;;) {
          void* object = pool->Alloc();
          pool->Free(object);
        }
      },
      "re-entrant call: Alloc\\(\\) of pool 'signalled-default' at .*debug_test.cc:[0-9]+ "
      "while (Alloc|Free)\\(\\) of pool 'signalled-default' at .*debug_test.cc");
}

// Two threads freeing one object at the same instant: exactly one free
// wins, the other is reported as a double free naming where the winner
// freed it, and nothing in the reporting races (ThreadSanitizer builds run
// this with halt_on_error).
std::atomic<int> g_double_frees{0};
void CountDoubleFrees(const MisuseReport& report) {
  if (report.misuse == Misuse::kDoubleFree) g_double_frees.fetch_add(1);
}

TEST(DebugModeTest, ConcurrentDoubleFreesAreReportedOnceEach) {
  MisuseHandler previous = SetMisuseHandler(&CountDoubleFrees);
  std::unique_ptr<Pool> pool = MakePool("raced", 32);
  constexpr int kRounds = 500;
  std::atomic<void*> shared{nullptr};
  std::atomic<int> round_started{-1};
  std::atomic<int> ready{0};
  std::atomic<int> done{0};
  auto racer = [&] {
    for (int round = 0; round < kRounds; ++round) {
      while (round_started.load() != round) std::this_thread::yield();
      void* object = shared.load();
      // Both racers free at the same instant.
      ready.fetch_add(1);
      while (ready.load() < 2 * (round + 1)) {
      }
      pool->Free(object);
      done.fetch_add(1);
    }
  };
  std::thread a(racer);
  std::thread b(racer);
  for (int round = 0; round < kRounds; ++round) {
    shared.store(pool->Alloc());
    round_started.store(round);
    while (done.load() < 2 * (round + 1)) std::this_thread::yield();
  }
  a.join();
  b.join();
  SetMisuseHandler(previous);
  EXPECT_EQ(g_double_frees.load(), kRounds);
  EXPECT_EQ(pool->Stats().used, 0u);
}

}  // namespace
}  // namespace poolguard
