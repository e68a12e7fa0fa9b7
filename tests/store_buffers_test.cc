// The store buffers of the scheduled executor (fuzz/store_buffers.h): the
// litmus tests of x86-TSO, on the model's calls as pool/atomic.h makes them
// (memory written at once, the replaced value kept for the other threads).

#include "fuzz/store_buffers.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace poolguard::fuzz {
namespace {

// Thread t stores `value` into `word` as an Atomic<uint64_t> store does.
void Store(StoreBuffers& buffers, size_t t, uint64_t& word, uint64_t value) {
  const uint64_t old = word;
  word = value;
  buffers.Store(t, &word, sizeof(word), old);
}

// Thread t loads `word` as an Atomic<uint64_t> load does.
uint64_t Load(StoreBuffers& buffers, size_t t, const uint64_t& word) {
  uint64_t bits;
  return buffers.Load(t, &word, sizeof(word), &bits) ? bits : word;
}

// Store buffering (Dekker without a fence): x = 1; r0 = y || y = 1; r1 = x
// ends with r0 == r1 == 0 on x86, which no interleaving can show.
TEST(StoreBuffersTest, BothThreadsMissTheOthersStore) {
  StoreBuffers buffers;
  uint64_t x = 0, y = 0;
  Store(buffers, 0, x, 1);
  Store(buffers, 1, y, 1);
  EXPECT_EQ(Load(buffers, 0, y), 0u);
  EXPECT_EQ(Load(buffers, 1, x), 0u);
  EXPECT_EQ(buffers.stale_loads(), 2u);
  // Each thread sees its own store at once.
  EXPECT_EQ(Load(buffers, 0, x), 1u);
  EXPECT_EQ(Load(buffers, 1, y), 1u);
}

// With a full fence (a drain) between each store and load, one thread sees
// the other's store.
TEST(StoreBuffersTest, AFenceDrainsItsThread) {
  StoreBuffers buffers;
  uint64_t x = 0, y = 0;
  Store(buffers, 0, x, 1);
  EXPECT_TRUE(buffers.Drain(0));
  EXPECT_FALSE(buffers.Drain(0));  // nothing left
  Store(buffers, 1, y, 1);
  buffers.Drain(1);
  EXPECT_EQ(Load(buffers, 0, y), 1u);
  EXPECT_EQ(Load(buffers, 1, x), 1u);
  EXPECT_EQ(buffers.stale_loads(), 0u);
}

// A process-wide barrier (membarrier()) drains every thread.
TEST(StoreBuffersTest, AProcessWideBarrierDrainsEveryThread) {
  StoreBuffers buffers;
  uint64_t x = 0, y = 0;
  Store(buffers, 0, x, 1);
  Store(buffers, 1, y, 1);
  const uint64_t drains = buffers.drains();
  buffers.DrainAll();
  EXPECT_EQ(buffers.drains(), drains + 2);
  EXPECT_EQ(Load(buffers, 0, y), 1u);
  EXPECT_EQ(Load(buffers, 2, x), 1u);
}

// Stores become visible in the order they were made: another thread sees
// the value from before the oldest buffered store, then (after the drain)
// the newest; never a later store without the earlier ones.
TEST(StoreBuffersTest, StoresDrainInOrder) {
  StoreBuffers buffers;
  uint64_t data = 0, flag = 0;
  Store(buffers, 0, data, 42);
  Store(buffers, 0, data, 43);
  Store(buffers, 0, flag, 1);
  EXPECT_EQ(Load(buffers, 1, flag), 0u);
  EXPECT_EQ(Load(buffers, 1, data), 0u);  // before the first of the two stores
  buffers.Drain(0);
  EXPECT_EQ(Load(buffers, 1, flag), 1u);
  EXPECT_EQ(Load(buffers, 1, data), 43u);
}

// A locked instruction drains its own thread and whoever has a store to
// the location buffered: it reads and writes memory, not a buffer.
TEST(StoreBuffersTest, ALockedInstructionDrainsItsThreadAndTheLocationsWriter) {
  StoreBuffers buffers;
  uint64_t lock = 1, mine = 0, other = 0;
  Store(buffers, 0, lock, 0);  // thread 0 releases a lock: a plain store
  Store(buffers, 0, other, 5);
  Store(buffers, 1, mine, 7);
  EXPECT_EQ(Load(buffers, 1, lock), 1u);   // still held, as far as thread 1 sees
  buffers.Locked(1, &lock, sizeof(lock));  // thread 1's exchange on the lock
  EXPECT_EQ(buffers.buffered(0), 0u);      // thread 0 drained, `other` too
  EXPECT_EQ(buffers.buffered(1), 0u);      // and thread 1 itself
  EXPECT_EQ(Load(buffers, 2, other), 5u);
  EXPECT_EQ(Load(buffers, 2, mine), 7u);
}

// Two threads' stores to one location: the second store drains the first
// thread, so a third thread never sees the two in different orders.
TEST(StoreBuffersTest, AStoreToAnotherThreadsBufferedLocationDrainsThatThread) {
  StoreBuffers buffers;
  uint64_t x = 0, unrelated = 0;
  Store(buffers, 0, unrelated, 9);
  Store(buffers, 0, x, 1);
  Store(buffers, 1, x, 2);
  EXPECT_EQ(buffers.buffered(0), 0u);
  EXPECT_EQ(Load(buffers, 2, unrelated), 9u);
  EXPECT_EQ(Load(buffers, 2, x), 1u);  // thread 1's store still buffered
  EXPECT_EQ(Load(buffers, 0, x), 1u);
}

// A load that overlaps another thread's buffered store of another size
// drains that thread rather than mixing two values.
TEST(StoreBuffersTest, APartialOverlapDrainsTheWriter) {
  StoreBuffers buffers;
  uint64_t word = 0;
  Store(buffers, 0, word, 0x1111222233334444u);
  uint64_t bits = 0;
  EXPECT_FALSE(buffers.Load(1, reinterpret_cast<const char*>(&word) + 4, 4, &bits));
  EXPECT_EQ(buffers.buffered(0), 0u);
}

// A full buffer drains its oldest entry to take a new one.
TEST(StoreBuffersTest, AFullBufferDrainsItsOldestEntry) {
  StoreBuffers buffers;
  uint64_t words[StoreBuffers::kCapacity + 1] = {};
  for (uint64_t& word : words) Store(buffers, 0, word, 1);
  EXPECT_EQ(buffers.buffered(0), StoreBuffers::kCapacity);
  EXPECT_EQ(Load(buffers, 1, words[0]), 1u);  // drained
  EXPECT_EQ(Load(buffers, 1, words[1]), 0u);  // still buffered
  EXPECT_EQ(Load(buffers, 1, words[StoreBuffers::kCapacity]), 0u);
}

}  // namespace
}  // namespace poolguard::fuzz
