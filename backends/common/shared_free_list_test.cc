// SharedFreeList on its own: the counts in its head are exact after every
// single-threaded step, batches keep their order and bounds, free never
// exceeds allocated, and concurrent pushes and pops lose nothing.

#include "backends/common/shared_free_list.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pool/system_memory.h"

namespace poolguard::internal {
namespace {

constexpr size_t kSlot = 32;

// Objects for the list, from the system layer like a pool's.
class Objects {
 public:
  ~Objects() {
    for (void* object : all_) ReleaseToSystem(object, kSlot, alignof(std::max_align_t));
  }
  void* New() {
    void* object = AllocateFromSystem(kSlot, alignof(std::max_align_t));
    all_.push_back(object);
    return object;
  }

 private:
  std::vector<void*> all_;
};

void ExpectCounts(const SharedFreeList& list, size_t allocated, size_t free) {
  const SharedFreeList::Counts counts = list.counts();
  EXPECT_EQ(counts.allocated, allocated);
  EXPECT_EQ(counts.free, free);
  EXPECT_LE(counts.free, counts.allocated);
}

// Objects the list's pushes will poison (as a pool does) before they go in.
void PushOne(SharedFreeList& list, void* object) {
  PoisonObject(object, kSlot);
  list.Push(object);
}

TEST(SharedFreeListTest, CountsAreExactAfterEveryStep) {
  SharedFreeList list;
  Objects objects;
  ExpectCounts(list, 0, 0);
  EXPECT_EQ(list.Pop(), nullptr);
  ExpectCounts(list, 0, 0);

  ASSERT_TRUE(list.ReserveAllocated(10));
  ExpectCounts(list, 1, 0);
  void* a = objects.New();
  PushOne(list, a);
  ExpectCounts(list, 1, 1);
  ASSERT_TRUE(list.ReserveAllocated(10));
  void* b = objects.New();
  PushOne(list, b);
  ExpectCounts(list, 2, 2);

  // Last in, first out.
  EXPECT_EQ(list.Pop(), b);
  ExpectCounts(list, 2, 1);
  EXPECT_EQ(list.Pop(), a);
  ExpectCounts(list, 2, 0);
  EXPECT_EQ(list.Pop(), nullptr);
  ExpectCounts(list, 2, 0);

  list.UnreserveAllocated();
  ExpectCounts(list, 1, 0);
  list.UnreserveAllocated();
  ExpectCounts(list, 0, 0);
}

TEST(SharedFreeListTest, ReserveStopsAtTheLimit) {
  SharedFreeList list;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(list.ReserveAllocated(3)) << i;
  EXPECT_FALSE(list.ReserveAllocated(3));
  ExpectCounts(list, 3, 0);
  list.UnreserveAllocated();
  EXPECT_TRUE(list.ReserveAllocated(3));
  ExpectCounts(list, 3, 0);
  for (int i = 0; i < 3; ++i) list.UnreserveAllocated();
}

TEST(SharedFreeListTest, BatchesKeepTheirOrderAndBounds) {
  SharedFreeList list;
  Objects objects;
  std::vector<void*> chain;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(list.ReserveAllocated(100));
    chain.push_back(objects.New());
  }
  for (size_t i = 0; i + 1 < chain.size(); ++i) WriteLink(chain[i], chain[i + 1]);
  list.PushChain(chain.front(), chain.back(), chain.size());
  ExpectCounts(list, 10, 10);

  void* out[16];
  ASSERT_EQ(list.PopBatch(out, 4), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], chain[i]) << i;
  ExpectCounts(list, 10, 6);
  // More than there is: what there is.
  ASSERT_EQ(list.PopBatch(out, 16), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], chain[4 + i]) << i;
  ExpectCounts(list, 10, 0);
  EXPECT_EQ(list.PopBatch(out, 16), 0u);
  for (int i = 0; i < 10; ++i) PushOne(list, chain[i]);
  ExpectCounts(list, 10, 10);
  for (int i = 0; i < 10; ++i) EXPECT_NE(list.Pop(), nullptr);
  for (int i = 0; i < 10; ++i) list.UnreserveAllocated();
}

TEST(SharedFreeListTest, SurplusPopsLeaveKeepAndUncountAllocated) {
  SharedFreeList list;
  Objects objects;
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(list.ReserveAllocated(100));
    PushOne(list, objects.New());
  }
  void* out[4];
  // At most 4 per call, never below keep = 5.
  EXPECT_EQ(list.PopSurplusToRelease(out, 4, 5), 4u);
  ExpectCounts(list, 5, 5);
  EXPECT_EQ(list.PopSurplusToRelease(out, 4, 5), 0u);
  ExpectCounts(list, 5, 5);
  EXPECT_EQ(list.PopSurplusToRelease(out, 4, 3), 2u);
  ExpectCounts(list, 3, 3);
}

TEST(SharedFreeListTest, TakeAllDetachesAndUncountsEverything) {
  SharedFreeList list;
  Objects objects;
  std::set<void*> pushed;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(list.ReserveAllocated(100));
    void* object = objects.New();
    pushed.insert(object);
    PushOne(list, object);
  }
  ASSERT_TRUE(list.ReserveAllocated(100));  // One object in use.
  ExpectCounts(list, 8, 7);
  std::set<void*> taken;
  for (void* object = list.TakeAllToRelease(); object != nullptr; object = ReadLink(object)) {
    taken.insert(object);
  }
  EXPECT_EQ(taken, pushed);
  ExpectCounts(list, 1, 0);
  EXPECT_EQ(list.TakeAllToRelease(), nullptr);
  list.UnreserveAllocated();
}

TEST(SharedFreeListTest, ForkLockHoldsTheListAndGivesItBackUnchanged) {
  SharedFreeList list;
  Objects objects;
  ASSERT_TRUE(list.ReserveAllocated(100));
  void* a = objects.New();
  PushOne(list, a);
  ASSERT_TRUE(list.ReserveAllocated(100));
  void* b = objects.New();
  list.LockForFork();
  // While held, other threads wait: a push from another thread completes
  // only after the release.
  std::atomic<bool> pushed{false};
  std::thread other([&] {
    PushOne(list, b);
    pushed.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed.load());
  list.UnlockAfterFork();
  other.join();
  EXPECT_TRUE(pushed.load());
  ExpectCounts(list, 2, 2);
  EXPECT_EQ(list.Pop(), b);
  EXPECT_EQ(list.Pop(), a);
}

TEST(SharedFreeListTest, ConcurrentPushesAndPopsLoseNothing) {
  SharedFreeList list;
  Objects objects;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 64;
  std::vector<std::vector<void*>> mine(kThreads);
  for (auto& set : mine) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_TRUE(list.ReserveAllocated(SharedFreeList::kMaxObjects));
      set.push_back(objects.New());
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&list, held = mine[t], t]() mutable {
      void* batch[8];
      for (int round = 0; round < 2000; ++round) {
        // Give everything back, then take some, singly and in batches.
        for (void* object : held) PushOne(list, object);
        held.clear();
        for (int i = 0; i < 16; ++i) {
          if (void* object = list.Pop()) held.push_back(object);
        }
        const size_t n = list.PopBatch(batch, 8);
        held.insert(held.end(), batch, batch + n);
        if ((round + t) % 7 == 0) {
          for (void* object : held) PushOne(list, object);
          held.clear();
        }
      }
      for (void* object : held) PushOne(list, object);
    });
  }
  for (std::thread& thread : threads) thread.join();
  ExpectCounts(list, kThreads * kPerThread, kThreads * kPerThread);
  std::set<void*> all;
  while (void* object = list.Pop()) EXPECT_TRUE(all.insert(object).second) << "popped twice";
  EXPECT_EQ(all.size(), size_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace poolguard::internal
