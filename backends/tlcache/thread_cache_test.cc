// Thread caches on their own, with a CacheSet whose TakeBack() records what
// it is given: binding, the window/drain handshake (also racing), thread
// exit in every phase (plain return, thread_local destructor, pthread key
// destructor) with index reuse, ReleaseCallingThreadCaches(), growth, index
// exhaustion, and fork.

#include "backends/tlcache/thread_cache.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pool/failure_injection.h"

namespace poolguard::internal {
namespace {

void* Fake(uintptr_t i) { return reinterpret_cast<void*>((i + 1) * 64); }

class TestSet final : public CacheSet {
 public:
  ~TestSet() override {
    ThreadCache* caches;
    {
      SpinLockHolder holder(&cache_registry_lock);
      caches = UnbindAll();
    }
    FreeCaches(caches);
  }

  std::vector<void*> Taken() {
    SpinLockHolder holder(&cache_registry_lock);
    return taken_;
  }
  size_t Cached() {
    SpinLockHolder holder(&cache_registry_lock);
    return CachedObjects();
  }
  void Drain(uint32_t capacity = 0) {
    SpinLockHolder holder(&cache_registry_lock);
    DrainAll(capacity);
  }

 protected:
  void TakeBack(ThreadCache& cache) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_registry_lock) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    taken_.insert(taken_.end(), cache.objects(), cache.objects() + n);
    cache.count.store(0, std::memory_order_relaxed);
  }

 private:
  std::vector<void*> taken_ ABSL_GUARDED_BY(cache_registry_lock);
};

// The owner's steps, as a backend's Free() and Alloc() take them.
bool PutInWindow(ThreadCache& cache, void* object) {
  bool done = false;
  if (OpenWindow(cache) || OpenFencedWindow(cache)) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    if (n < cache.capacity) {
      cache.objects()[n] = object;
      cache.count.store(n + 1, std::memory_order_relaxed);
      done = true;
    }
  }
  CloseWindow(cache);
  return done;
}

void* TakeInWindow(ThreadCache& cache) {
  void* object = nullptr;
  if (OpenWindow(cache) || OpenFencedWindow(cache)) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    if (n > 0) {
      object = cache.objects()[n - 1];
      cache.count.store(n - 1, std::memory_order_relaxed);
    }
  }
  CloseWindow(cache);
  return object;
}

TEST(ThreadCacheTest, BindGivesAnOpenEmptyCacheAndAThreadIndex) {
  TestSet set;
  std::thread([&] {
    EXPECT_EQ(set.Mine(), nullptr);
    EXPECT_EQ(CacheThreadIndexForTesting(), 0u);
    ThreadCache* cache = set.Bind(8, 4);
    ASSERT_NE(cache, nullptr);
    EXPECT_EQ(set.Mine(), cache);
    EXPECT_NE(CacheThreadIndexForTesting(), 0u);
    EXPECT_EQ(cache->count.load(), 0u);
    EXPECT_EQ(cache->capacity, 4u);
    EXPECT_EQ(cache->slots, 8u);
    EXPECT_NE(cache->open.load(), kCacheClosed);
  }).join();
}

TEST(ThreadCacheTest, ADrainTakesTheContentsAndReopens) {
  TestSet set;
  std::thread([&] {
    ThreadCache* cache = set.Bind(8, 8);
    ASSERT_NE(cache, nullptr);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(PutInWindow(*cache, Fake(i)));
    EXPECT_EQ(set.Cached(), 5u);
    set.Drain(/*capacity=*/2);
    EXPECT_EQ(set.Taken().size(), 5u);
    EXPECT_EQ(set.Cached(), 0u);
    EXPECT_EQ(cache->capacity, 2u);  // Lowered by the drain.
    // Reopened: the owner uses it again, and sees it empty.
    EXPECT_EQ(TakeInWindow(*cache), nullptr);
    EXPECT_TRUE(PutInWindow(*cache, Fake(9)));
    EXPECT_EQ(TakeInWindow(*cache), Fake(9));
  }).join();
}

TEST(ThreadCacheTest, ADrainWaitsForTheWindowInProgress) {
  TestSet set;
  std::atomic<int> stage{0};
  std::atomic<bool> drained{false};
  std::thread owner([&] {
    ThreadCache* cache = set.Bind(8, 8);
    ASSERT_NE(cache, nullptr);
    ASSERT_TRUE(OpenWindow(*cache));
    stage.store(1);
    // Inside the window: a drainer must wait for us.
    while (stage.load() != 2) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(drained.load()) << "the drain did not wait for the window";
    cache->objects()[0] = Fake(1);
    cache->count.store(1, std::memory_order_relaxed);
    CloseWindow(*cache);
  });
  while (stage.load() != 1) std::this_thread::yield();
  std::thread drainer([&] {
    stage.store(2);
    set.Drain();
    drained.store(true);
  });
  owner.join();
  drainer.join();
  // The object stored inside the window went to the drain, not lost.
  EXPECT_EQ(set.Taken(), std::vector<void*>{Fake(1)});
}

TEST(ThreadCacheTest, OwnersAndDrainersRacingLoseAndDuplicateNothing) {
  TestSet set;
  constexpr int kOwners = 3;
  constexpr int kPerOwner = 2000;
  std::atomic<bool> stop{false};
  std::vector<std::vector<void*>> kept(kOwners);
  std::vector<std::thread> owners;
  for (int t = 0; t < kOwners; ++t) {
    owners.emplace_back([&, t] {
      ThreadCache* cache = set.Bind(16, 16);
      ASSERT_NE(cache, nullptr);
      std::vector<void*> held;
      for (int i = 0; i < kPerOwner; ++i) held.push_back(Fake(t * kPerOwner + i));
      for (int round = 0; round < 20000; ++round) {
        if (!held.empty() && round % 3 != 2) {
          if (PutInWindow(*cache, held.back())) held.pop_back();
        } else if (void* object = TakeInWindow(*cache)) {
          held.push_back(object);
        }
      }
      // Give the rest back through the cache's own exit.
      kept[t] = held;
    });
  }
  std::thread drainer([&] {
    while (!stop.load()) set.Drain();
  });
  for (std::thread& owner : owners) owner.join();
  stop.store(true);
  drainer.join();
  const std::vector<void*> taken = set.Taken();
  std::multiset<void*> all(taken.begin(), taken.end());
  for (const auto& held : kept) all.insert(held.begin(), held.end());
  std::set<void*> distinct(all.begin(), all.end());
  EXPECT_EQ(distinct.size(), all.size()) << "an object was taken twice";
  EXPECT_EQ(all.size(), size_t{kOwners * kPerOwner});
}

TEST(ThreadCacheTest, AThreadsExitGivesBackEveryCacheAndItsIndex) {
  TestSet a;
  TestSet b;
  const uint32_t before = CacheThreadsInUseForTesting();
  std::thread([&] {
    ThreadCache* ca = a.Bind(8, 8);
    ThreadCache* cb = b.Bind(8, 8);
    ASSERT_NE(ca, nullptr);
    ASSERT_NE(cb, nullptr);
    EXPECT_TRUE(PutInWindow(*ca, Fake(1)));
    EXPECT_TRUE(PutInWindow(*cb, Fake(2)));
    EXPECT_TRUE(PutInWindow(*cb, Fake(3)));
    EXPECT_EQ(CacheThreadsInUseForTesting(), before + 1);
  }).join();
  EXPECT_EQ(a.Taken(), std::vector<void*>{Fake(1)});
  EXPECT_EQ(b.Taken().size(), 2u);
  EXPECT_EQ(a.Cached() + b.Cached(), 0u);
  EXPECT_EQ(CacheThreadsInUseForTesting(), before);
}

// Thread exit in the phases glibc runs after the thread function returns:
// C++ thread_local destructors, then pthread key destructors.
TestSet* g_exit_set = nullptr;

struct ThreadLocalUser {
  ~ThreadLocalUser() {
    ThreadCache* cache = g_exit_set->Bind(8, 8);
    EXPECT_NE(cache, nullptr);
    if (cache != nullptr) EXPECT_TRUE(PutInWindow(*cache, Fake(7)));
  }
};

void UseInKeyDestructor(void*) {
  // This thread's first bind happens here, after its thread_local
  // destructors: the exit hook must still run, in a later round.
  ThreadCache* cache = g_exit_set->Bind(8, 8);
  EXPECT_NE(cache, nullptr);
  if (cache != nullptr) EXPECT_TRUE(PutInWindow(*cache, Fake(8)));
}

TEST(ThreadCacheTest, ExitGivesCachesBackFromAThreadLocalDestructor) {
  TestSet set;
  g_exit_set = &set;
  const uint32_t before = CacheThreadsInUseForTesting();
  std::thread([] {
    static thread_local ThreadLocalUser user;
    static_cast<void>(&user);
  }).join();
  EXPECT_EQ(set.Taken(), std::vector<void*>{Fake(7)});
  EXPECT_EQ(CacheThreadsInUseForTesting(), before);
}

TEST(ThreadCacheTest, ExitGivesCachesBackFromAKeyDestructorAndTheNextThreadStartsClean) {
  TestSet set;
  g_exit_set = &set;
  pthread_key_t key;
  ASSERT_EQ(pthread_key_create(&key, &UseInKeyDestructor), 0);
  const uint32_t before = CacheThreadsInUseForTesting();
  // Threads one after another: glibc gives each the previous one's stack and
  // TLS block, so a cache left linked from dead TLS would show here.
  for (int i = 0; i < 8; ++i) {
    std::thread([key] {
      EXPECT_EQ(CacheThreadIndexForTesting(), 0u) << "a new thread inherited an index";
      pthread_setspecific(key, reinterpret_cast<void*>(1));
    }).join();
    EXPECT_EQ(set.Taken().size(), size_t(i + 1));
    EXPECT_EQ(set.Cached(), 0u);
    EXPECT_EQ(CacheThreadsInUseForTesting(), before);
  }
  pthread_key_delete(key);
}

TEST(ThreadCacheTest, ThreadIndexesAreReusedSoThousandsOfThreadsFit) {
  TestSet set;
  const uint32_t before = CacheThreadsInUseForTesting();
  for (int round = 0; round < 100; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 20; ++t) {
      threads.emplace_back([&set] {
        ThreadCache* cache = set.Bind(4, 4);
        ASSERT_NE(cache, nullptr) << "no index left: indexes are not reused";
        PutInWindow(*cache, Fake(1));
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(CacheThreadsInUseForTesting(), before);
  }
  EXPECT_EQ(set.Taken().size(), 2000u);
}

TEST(ThreadCacheTest, ReleasingTheCallingThreadsCachesAllowsBindingAgain) {
  TestSet set;
  std::thread([&] {
    ThreadCache* cache = set.Bind(8, 8);
    ASSERT_NE(cache, nullptr);
    PutInWindow(*cache, Fake(1));
    CacheSet::ReleaseCallingThreadCaches();
    EXPECT_EQ(set.Mine(), nullptr);
    EXPECT_EQ(set.Taken(), std::vector<void*>{Fake(1)});
    EXPECT_EQ(CacheThreadIndexForTesting(), 0u);  // Its index went back too.
    EXPECT_NE(set.Bind(8, 8), nullptr);
    EXPECT_NE(CacheThreadIndexForTesting(), 0u);
  }).join();
}

TEST(ThreadCacheTest, GrowingKeepsTheContents) {
  TestSet set;
  std::thread([&] {
    ThreadCache* cache = set.Bind(4, 4);
    ASSERT_NE(cache, nullptr);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(PutInWindow(*cache, Fake(i)));
    EXPECT_FALSE(PutInWindow(*cache, Fake(4)));  // Full.
    ThreadCache* bigger = set.Grow(cache, 16, 16);
    ASSERT_NE(bigger, nullptr);
    EXPECT_EQ(set.Mine(), bigger);
    EXPECT_EQ(bigger->slots, 16u);
    EXPECT_EQ(bigger->count.load(), 4u);
    EXPECT_TRUE(PutInWindow(*bigger, Fake(4)));
    EXPECT_EQ(TakeInWindow(*bigger), Fake(4));
    EXPECT_EQ(TakeInWindow(*bigger), Fake(3));
    EXPECT_EQ(set.Cached(), 3u);
  }).join();
  EXPECT_EQ(set.Taken().size(), 3u);
}

TEST(ThreadCacheTest, BeyondTheLastThreadIndexBindingIsRefused) {
  TestSet set;
  const uint32_t free = kMaxCacheThreads - 1 - CacheThreadsInUseForTesting();
  std::atomic<uint32_t> bound{0};
  std::atomic<uint32_t> refused{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < free + 2; ++t) {
    threads.emplace_back([&] {
      if (set.Bind(4, 4) != nullptr) {
        bound.fetch_add(1);
      } else {
        refused.fetch_add(1);
      }
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (bound.load() + refused.load() < free + 2) std::this_thread::yield();
  EXPECT_EQ(bound.load(), free);
  EXPECT_EQ(refused.load(), 2u);
  // Refused without asking the system: with every request failing, a bind
  // past the last index fails none (the other threads here sleep).
  std::thread([&] {
    SystemAllocFailures every_request;
    every_request.every_nth = 1;
    SetSystemAllocFailures(every_request);
    const uint64_t failed_before = InjectedSystemAllocFailures();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(set.Bind(4, 4), nullptr);
    EXPECT_EQ(InjectedSystemAllocFailures(), failed_before);
    ClearSystemAllocFailures();
  }).join();
  release.store(true);
  for (std::thread& thread : threads) thread.join();
}

TEST(ThreadCacheTest, AForkChildTakesBackTheCachesOfThreadsThatAreGone) {
  TestSet set;
  std::atomic<int> stage{0};
  std::thread other([&] {
    ThreadCache* cache = set.Bind(8, 8);
    ASSERT_NE(cache, nullptr);
    PutInWindow(*cache, Fake(1));
    PutInWindow(*cache, Fake(2));
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  ThreadCache* mine = set.Bind(8, 8);
  ASSERT_NE(mine, nullptr);
  PutInWindow(*mine, Fake(3));
  CacheSet::LockAllForFork();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    CacheSet::UnlockAllAfterFork(/*child=*/true);
    // The other thread does not exist here: its cache came back; ours stays.
    const std::vector<void*> taken = set.Taken();
    const bool ok = taken.size() == 2 && set.Cached() == 1 && TakeInWindow(*mine) == Fake(3);
    _exit(ok ? 0 : 1);
  }
  CacheSet::UnlockAllAfterFork(/*child=*/false);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The parent's caches are untouched and open again.
  EXPECT_EQ(set.Cached(), 3u);
  EXPECT_TRUE(PutInWindow(*mine, Fake(4)));
  stage.store(2);
  other.join();
}

}  // namespace
}  // namespace poolguard::internal
