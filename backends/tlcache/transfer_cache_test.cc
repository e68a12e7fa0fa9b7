// The transfer cache on its own: batches in and out, newest first, all or
// nothing at capacity, and nothing lost when threads trade through it.

#include "backends/tlcache/transfer_cache.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace poolguard::internal {
namespace {

void* Fake(uintptr_t i) { return reinterpret_cast<void*>((i + 1) * 64); }

TEST(TransferCacheTest, GivesAndTakesBatchesNewestFirst) {
  TransferCache cache(TransferCache::kMaxCapacity);
  ASSERT_TRUE(cache.Reserve());
  EXPECT_EQ(cache.count(), 0u);
  void* out[8];
  EXPECT_EQ(cache.Take(out, 8), 0u);
  void* first[3] = {Fake(0), Fake(1), Fake(2)};
  void* second[2] = {Fake(3), Fake(4)};
  ASSERT_TRUE(cache.Give(first, 3));
  ASSERT_TRUE(cache.Give(second, 2));
  EXPECT_EQ(cache.count(), 5u);
  // The newest objects first: the top of the array.
  ASSERT_EQ(cache.Take(out, 2), 2u);
  EXPECT_EQ(out[0], Fake(3));
  EXPECT_EQ(out[1], Fake(4));
  EXPECT_EQ(cache.count(), 3u);
  ASSERT_EQ(cache.Take(out, 8), 3u);
  EXPECT_EQ(out[0], Fake(0));
  EXPECT_EQ(cache.count(), 0u);
}

TEST(TransferCacheTest, ASmallerOneHoldsItsCapacity) {
  TransferCache cache(8);
  void* one = Fake(0);
  EXPECT_EQ(cache.capacity(), 0u);  // No slots until reserved:
  EXPECT_FALSE(cache.Give(&one, 1));
  ASSERT_TRUE(cache.Reserve());
  EXPECT_TRUE(cache.reserve_tried());
  EXPECT_EQ(cache.capacity(), 8u);
  void* nine[9];
  for (uintptr_t i = 0; i < 9; ++i) nine[i] = Fake(i);
  EXPECT_FALSE(cache.Give(nine, 9));
  EXPECT_TRUE(cache.Give(nine, 8));
  EXPECT_FALSE(cache.Give(nine, 1));
}

TEST(TransferCacheTest, AGiveThatDoesNotFitStoresNothing) {
  TransferCache cache(TransferCache::kMaxCapacity);
  ASSERT_TRUE(cache.Reserve());
  std::vector<void*> batch(TransferCache::kMaxCapacity - 1);
  for (size_t i = 0; i < batch.size(); ++i) batch[i] = Fake(i);
  ASSERT_TRUE(cache.Give(batch.data(), batch.size()));
  void* two[2] = {Fake(5000), Fake(5001)};
  EXPECT_FALSE(cache.Give(two, 2));
  EXPECT_EQ(cache.count(), TransferCache::kMaxCapacity - 1);
  EXPECT_TRUE(cache.Give(two, 1));
  EXPECT_EQ(cache.count(), TransferCache::kMaxCapacity);
  std::vector<void*> all(TransferCache::kMaxCapacity);
  EXPECT_EQ(cache.TakeAll(all.data()), TransferCache::kMaxCapacity);
  EXPECT_EQ(all.back(), Fake(5000));
  EXPECT_EQ(cache.count(), 0u);
  EXPECT_EQ(cache.TakeAll(all.data()), 0u);
}

TEST(TransferCacheTest, ThreadsTradingThroughItLoseNothing) {
  TransferCache cache(TransferCache::kMaxCapacity);
  ASSERT_TRUE(cache.Reserve());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 96;
  std::vector<std::thread> threads;
  std::vector<std::vector<void*>> kept(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, &kept, t] {
      std::vector<void*> held;
      for (int i = 0; i < kPerThread; ++i) held.push_back(Fake(t * kPerThread + i));
      void* batch[32];
      for (int round = 0; round < 3000; ++round) {
        const size_t n = std::min<size_t>(held.size(), 1 + round % 32);
        if (n > 0 && cache.Give(held.data() + held.size() - n, n)) held.resize(held.size() - n);
        const size_t got = cache.Take(batch, 1 + (round * 7) % 32);
        held.insert(held.end(), batch, batch + got);
      }
      kept[t] = held;
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<void*> all;
  for (const auto& held : kept) {
    for (void* object : held) EXPECT_TRUE(all.insert(object).second);
  }
  std::vector<void*> rest(TransferCache::kMaxCapacity);
  const size_t n = cache.TakeAll(rest.data());
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(all.insert(rest[i]).second);
  EXPECT_EQ(all.size(), size_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace poolguard::internal
