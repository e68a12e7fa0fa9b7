// Threads end in every phase a real process has: a thread's last (or first)
// pool call may run in ordinary code, in a C++ thread_local destructor, or in
// a pthread key destructor (glibc runs those after the thread_local ones).
// Whatever a backend keeps per thread must go back to its pool, and the next
// thread, which glibc gives the dead one's stack and TLS block, must start
// clean. Then thread churn: thousands of short threads on many pools.

#include <limits.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/config.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "pool/limits.h"
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

void ExpectStats(const Pool& pool, size_t allocated, size_t used, size_t free) {
  const PoolStats stats = pool.Stats();
  EXPECT_EQ(stats.allocated, allocated) << pool.name();
  EXPECT_EQ(stats.used, used) << pool.name();
  EXPECT_EQ(stats.free, free) << pool.name();
}

// The pool the destructors below use; set by each test before its threads.
Pool* g_pool = nullptr;

void AllocAndFree(Pool& pool, int objects) {
  std::vector<void*> held;
  for (int i = 0; i < objects; ++i) {
    void* object = pool.Alloc();
    ASSERT_NE(object, nullptr);
    static_cast<char*>(object)[0] = 1;
    held.push_back(object);
  }
  for (void* object : held) pool.Free(object);
}

void UseInKeyDestructor(void* objects) {
  AllocAndFree(*g_pool, static_cast<int>(reinterpret_cast<intptr_t>(objects)));
}

struct UseInThreadLocalDestructor {
  ~UseInThreadLocalDestructor() { AllocAndFree(*g_pool, 5); }
};

TEST(ThreadExitTest, APoolUsedFirstInAKeyDestructorGetsEverythingBack) {
  std::unique_ptr<Pool> pool = MakePool("keyed", 48);
  g_pool = pool.get();
  pthread_key_t key;
  ASSERT_EQ(pthread_key_create(&key, &UseInKeyDestructor), 0);
  // One thread after another: each gets the previous one's stack and TLS.
  for (int i = 0; i < 4; ++i) {
    std::thread([key] { pthread_setspecific(key, reinterpret_cast<void*>(3)); }).join();
  }
  // And one that stays alive, its object freed into its cache, while the
  // pool is flushed and inspected.
  std::atomic<bool> used{false};
  std::atomic<bool> done{false};
  std::thread alive([&] {
    pthread_setspecific(key, reinterpret_cast<void*>(2));
    AllocAndFree(*g_pool, 1);
    used.store(true);
    while (!done.load()) std::this_thread::yield();
  });
  while (!used.load()) std::this_thread::yield();
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
  done.store(true);
  alive.join();
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
  pthread_key_delete(key);
  // ~Pool: nothing in use, no cache left pointing into a dead thread.
  pool.reset();
}

// Sets its key again until glibc's last round of key destructors (under
// TSan two rounds before it: TSan's own thread finalizer is a key
// destructor that takes the last round, and code after it crashes TSan),
// then uses the pool there for the thread's first time, and keeps pool.h's
// rule for that round: no exit hook can run after it.
pthread_key_t g_last_round_key;
bool g_used_before_exit = false;  // Set before each thread, read by it.
void UseInLastKeyDestructorRound(void* rounds_left) {
  const intptr_t left = reinterpret_cast<intptr_t>(rounds_left);
  if (left > 1) {
    pthread_setspecific(g_last_round_key, reinterpret_cast<void*>(left - 1));
    return;
  }
  AllocAndFree(*g_pool, 9);
  // The rule is only for a thread whose first call this is.
  if (!g_used_before_exit) ReleaseThreadCaches();
}

TEST(ThreadExitTest, AThreadsCallsInTheLastKeyRoundLeaveNoCacheBehind) {
  std::unique_ptr<Pool> pool = MakePool("last-round", 40);
  g_pool = pool.get();
  // glibc visits keys in index order in each round, so a key set in the
  // last round is still destroyed in it if its index is above the one being
  // destroyed. Make the pool's exit hook exist (a first bind), then take a
  // key above it: glibc gives the lowest free index, so hold 64 keys (more
  // than this process ever freed) and take the next.
  std::thread([] { AllocAndFree(*g_pool, 1); }).join();
  std::vector<pthread_key_t> below;
  for (;;) {
    ASSERT_EQ(pthread_key_create(&g_last_round_key, &UseInLastKeyDestructorRound), 0);
    if (below.size() >= 64) break;
    below.push_back(g_last_round_key);
  }
#if defined(ABSL_HAVE_THREAD_SANITIZER)
  // Two rounds early: the pool's exit hook, armed by the first call, runs a
  // round after it and must still come before TSan's finalizer.
  constexpr intptr_t kRounds = PTHREAD_DESTRUCTOR_ITERATIONS - 2;
#else
  constexpr intptr_t kRounds = PTHREAD_DESTRUCTOR_ITERATIONS;
#endif
  // Odd rounds: a thread that used the pool (and gave its caches back, as
  // ReleaseThreadCaches() allows at any time) before its exit: its exit
  // hook stays armed, and its calls in the last round use no cache.
  for (int i = 0; i < 8; ++i) {
    g_used_before_exit = i % 2 == 1;
    std::thread([] {
      if (g_used_before_exit) {
        AllocAndFree(*g_pool, 3);
        ReleaseThreadCaches();
      }
      pthread_setspecific(g_last_round_key, reinterpret_cast<void*>(kRounds));
    }).join();
    // Every free object is this thread's to take, without a new one.
    const PoolStats before = pool->Stats();
    EXPECT_EQ(before.used, 0u);
    std::vector<void*> taken;
    for (size_t j = 0; j < before.free; ++j) taken.push_back(pool->Alloc());
    EXPECT_EQ(pool->Stats().allocated, before.allocated) << "a dead thread's cache kept objects";
    for (void* object : taken) pool->Free(object);
    ReleaseThreadCaches();
  }
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
  pthread_key_delete(g_last_round_key);
  for (pthread_key_t key : below) pthread_key_delete(key);
}

TEST(ThreadExitTest, APoolUsedLastInAThreadLocalDestructorGetsEverythingBack) {
  std::unique_ptr<Pool> pool = MakePool("thread-local", 64);
  g_pool = pool.get();
  for (int i = 0; i < 4; ++i) {
    std::thread([] {
      AllocAndFree(*g_pool, 2);
      static thread_local UseInThreadLocalDestructor user;
      static_cast<void>(&user);
    }).join();
    pool->Flush();
    ExpectStats(*pool, 0, 0, 0);
  }
}

TEST(ThreadExitTest, AnObjectFreedInTheExitingThreadsKeyDestructor) {
  // Allocated in the thread's body, freed during its exit.
  std::unique_ptr<Pool> pool = MakePool("held-across-exit", 32);
  pthread_key_t key;
  ASSERT_EQ(pthread_key_create(&key, [](void* object) { g_pool->Free(object); }), 0);
  g_pool = pool.get();
  for (int i = 0; i < 4; ++i) {
    std::thread([key] { pthread_setspecific(key, g_pool->Alloc()); }).join();
    ExpectStats(*pool, pool->Stats().allocated, 0, pool->Stats().allocated);
  }
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
  pthread_key_delete(key);
}

TEST(ThreadExitTest, ThousandsOfShortThreadsOnManyPoolsLeaveNothingBehind) {
  constexpr int kPools = 24;
  constexpr int kRounds = 250;
  constexpr int kThreadsPerRound = 8;
  const size_t bytes_before = SystemBytesInUse();
  std::vector<std::unique_ptr<Pool>> pools;
  for (int i = 0; i < kPools; ++i) {
    pools.push_back(MakePool("churn-" + std::to_string(i), 8 + 24 * (i % 5)));
  }
  pthread_key_t key;
  ASSERT_EQ(
      pthread_key_create(&key, [](void* pool) { AllocAndFree(*static_cast<Pool*>(pool), 2); }), 0);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreadsPerRound; ++t) {
      threads.emplace_back([&pools, key, round, t] {
        const int first = (round * kThreadsPerRound + t) % kPools;
        for (int i = 0; i < 6; ++i) AllocAndFree(*pools[(first + i) % kPools], 1 + i % 3);
        // Some threads' last calls run in their key destructor.
        if (t % 2 == 0) pthread_setspecific(key, pools[(first + 7) % kPools].get());
      });
    }
    for (std::thread& thread : threads) thread.join();
    if (round % 50 == 49) {
      for (const auto& pool : pools) {
        const PoolStats stats = pool->Stats();
        EXPECT_EQ(stats.used, 0u) << pool->name();
        EXPECT_EQ(stats.allocated, stats.free) << pool->name();
      }
    }
  }
  pthread_key_delete(key);
  for (const auto& pool : pools) {
    pool->Flush();
    ExpectStats(*pool, 0, 0, 0);
  }
  pools.clear();
  EXPECT_EQ(SystemBytesInUse(), bytes_before);
}

}  // namespace
}  // namespace poolguard
