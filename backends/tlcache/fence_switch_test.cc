// membarrier() failing while thread caches are in use (injected, as a
// seccomp filter installed later or ENOMEM would cause it): the drain that
// meets the failure switches every open cache of every pool to fenced
// windows through the fallback barrier, and from then on owners and drainers
// racing still lose and duplicate nothing; once the injected failure is
// turned off, the process goes back to membarrier() and unfenced windows,
// still racing. A test binary of its own: the mode is the process's.

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "backends/tlcache/heavy_barrier.h"
#include "backends/tlcache/thread_cache.h"
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
  void Drain() {
    SpinLockHolder holder(&cache_registry_lock);
    DrainAll(0);
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

// One owner step; returns whether the cache could be used.
bool Step(ThreadCache& cache, std::vector<void*>& held, bool put) {
  const bool usable = OpenWindow(cache) || OpenFencedWindow(cache);
  if (usable) {
    const uint32_t n = cache.count.load(std::memory_order_relaxed);
    if (put && !held.empty() && n < cache.capacity) {
      cache.objects()[n] = held.back();
      held.pop_back();
      cache.count.store(n + 1, std::memory_order_relaxed);
    } else if (!put && n > 0) {
      held.push_back(cache.objects()[n - 1]);
      cache.count.store(n - 1, std::memory_order_relaxed);
    }
  }
  CloseWindow(cache);
  return usable;
}

TEST(FenceSwitchTest, AFailingMembarrierFencesEveryCacheAndOwnersAndDrainersStayExclusive) {
  if (OwnersMustFence()) GTEST_SKIP() << "no membarrier() here: fenced from the start";
  TestSet drained;
  TestSet other;
  constexpr int kOwners = 3;
  constexpr int kPerOwner = 1000;
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<void*>> kept(kOwners);
  std::vector<ThreadCache*> others(kOwners);
  std::vector<std::thread> owners;
  for (int t = 0; t < kOwners; ++t) {
    owners.emplace_back([&, t] {
      ThreadCache* cache = drained.Bind(16, 16);
      ThreadCache* second = other.Bind(16, 16);
      ASSERT_NE(cache, nullptr);
      ASSERT_NE(second, nullptr);
      others[t] = second;
      std::vector<void*> held;
      for (int i = 0; i < kPerOwner; ++i) held.push_back(Fake(t * kPerOwner + i));
      ready.fetch_add(1);
      for (int round = 0; !stop.load(std::memory_order_relaxed) || round < 20000; ++round) {
        Step(*cache, held, round % 3 != 2);
        Step(*second, held, round % 5 != 4);
      }
      kept[t] = held;
    });
  }
  while (ready.load() != kOwners) std::this_thread::yield();
  drained.Drain();
  SetSystemCallFailure(SystemCall::kMembarrier, EPERM);
  const uint64_t fallbacks = FallbackBarriersForTesting();
  drained.Drain();  // Meets the failure: the switch.
  EXPECT_EQ(FallbackBarriersForTesting(), fallbacks + 1);
  EXPECT_TRUE(OwnersMustFence());
  for (ThreadCache* cache : others) {
    // relaxed: a snapshot for the test; the owners keep using them.
    EXPECT_EQ(cache->open.load(std::memory_order_relaxed), kCacheOpenFenced);
  }
  for (int i = 0; i < 200; ++i) {
    drained.Drain();
    other.Drain();
  }
  // The injection ends: the next drain chooses again, finds membarrier()
  // working, and the caches it reopens are unfenced; owners still racing.
  SetSystemCallFailure(SystemCall::kMembarrier, 0);
  drained.Drain();
  EXPECT_FALSE(OwnersMustFence());
  for (int i = 0; i < 200; ++i) {
    drained.Drain();
    other.Drain();
  }
  {
    // Under the lock, as the owners' exit hooks free these caches under it
    // (the relaxed load of `stop` orders nothing).
    SpinLockHolder holder(&cache_registry_lock);
    for (ThreadCache* cache : others) {
      EXPECT_EQ(cache->open.load(std::memory_order_relaxed), kCacheOpen);
    }
  }
  stop.store(true);
  for (std::thread& owner : owners) owner.join();
  std::multiset<void*> all;
  for (TestSet* set : {&drained, &other}) {
    const std::vector<void*> taken = set->Taken();
    all.insert(taken.begin(), taken.end());
  }
  for (const auto& held : kept) all.insert(held.begin(), held.end());
  std::set<void*> distinct(all.begin(), all.end());
  EXPECT_EQ(distinct.size(), all.size()) << "an object was taken twice";
  EXPECT_EQ(all.size(), size_t{kOwners * kPerOwner});
}

}  // namespace
}  // namespace poolguard::internal
