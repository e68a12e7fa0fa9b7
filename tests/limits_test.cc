// Limits (pool/limits.h): the process-wide byte limit refuses cleanly, after
// a GcAll() that made what room it could; max_objects is in contract_test.

#include "pool/limits.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

// A new pool, used once by this thread and flushed: a backend that keeps a
// cache per thread has bound this thread's now. A thread cache is memory
// from the system as well, counted in SystemBytesInUse() like objects
// (CountsAThreadCacheOnceBound below), so the tests that count objects
// start after it exists.
std::unique_ptr<Pool> MakePool(std::string name, size_t object_size, size_t min_free = 0) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = object_size;
  options.min_free = min_free;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  if (!pool.ok()) return nullptr;
  void* object = (*pool)->Alloc();
  EXPECT_NE(object, nullptr);
  (*pool)->Free(object);
  (*pool)->Flush();
  return *std::move(pool);
}

class ByteLimitTest : public ::testing::Test {
 protected:
  void TearDown() override { SetProcessByteLimit(0); }
};

TEST_F(ByteLimitTest, CountsBytesHeldFromTheSystem) {
  const size_t before = SystemBytesInUse();
  {
    std::unique_ptr<Pool> pool = MakePool("counted", 100);
    const size_t with_pool = SystemBytesInUse();
    EXPECT_GT(with_pool, before);
    void* object = pool->Alloc();
    ASSERT_NE(object, nullptr);
    EXPECT_EQ(SystemBytesInUse(), with_pool + pool->slot_size());
    pool->Free(object);
    EXPECT_EQ(SystemBytesInUse(), with_pool + pool->slot_size());
    pool->Flush();
    EXPECT_EQ(SystemBytesInUse(), with_pool);
  }
  EXPECT_EQ(SystemBytesInUse(), before);
}

TEST_F(ByteLimitTest, CountsAThreadCacheOnceBound) {
  // Whatever a backend keeps per thread goes back to the system with the
  // thread's caches, or with the pool.
  const size_t before = SystemBytesInUse();
  {
    std::unique_ptr<Pool> pool = MakePool("cached", 100);
    const size_t bound = SystemBytesInUse();
    ReleaseThreadCaches();
    const size_t released = SystemBytesInUse();
    EXPECT_LE(released, bound);
    void* object = pool->Alloc();
    pool->Free(object);
    pool->Flush();
    EXPECT_EQ(SystemBytesInUse(), bound);
  }
  EXPECT_EQ(SystemBytesInUse(), before);
}

TEST_F(ByteLimitTest, AllocFailsCleanlyAtTheLimitAndRecovers) {
  std::unique_ptr<Pool> pool = MakePool("capped", 64);
  SetProcessByteLimit(SystemBytesInUse() + 10 * pool->slot_size());
  std::vector<void*> objects;
  for (int i = 0; i < 10; ++i) {
    void* object = pool->Alloc();
    ASSERT_NE(object, nullptr) << i;
    objects.push_back(object);
  }
  EXPECT_EQ(pool->Alloc(), nullptr);
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.allocated, 10u);
  EXPECT_EQ(stats.used, 10u);
  EXPECT_EQ(stats.free, 0u);
  // Create() is refused too, with a status rather than a crash.
  PoolOptions options;
  options.name = "no-room";
  options.object_size = 8;
  EXPECT_EQ(Pool::Create(options).status().code(), absl::StatusCode::kResourceExhausted);
  // A freed object is reused without asking the system.
  pool->Free(objects.back());
  objects.back() = pool->Alloc();
  EXPECT_NE(objects.back(), nullptr);
  for (void* object : objects) pool->Free(object);
  EXPECT_EQ(pool->Stats().failed, 1u);
}

TEST_F(ByteLimitTest, GcAllMakesRoomBeforeAllocFails) {
  // Pool `idle` holds free objects beyond its min_free; `busy` needs room.
  std::unique_ptr<Pool> idle = MakePool("idle", 64, /*min_free=*/2);
  std::unique_ptr<Pool> busy = MakePool("busy", 64);
  std::vector<void*> objects;
  for (int i = 0; i < 8; ++i) objects.push_back(idle->Alloc());
  for (void* object : objects) idle->Free(object);
  objects.clear();
  ASSERT_EQ(idle->Stats().free, 8u);
  // Room for nothing more: busy's allocations need idle's surplus.
  SetProcessByteLimit(SystemBytesInUse());
  for (int i = 0; i < 6; ++i) {
    void* object = busy->Alloc();
    ASSERT_NE(object, nullptr) << "allocation " << i << " after the gc";
    objects.push_back(object);
  }
  EXPECT_EQ(idle->Stats().free, 2u);  // Trimmed to min_free, not below.
  EXPECT_EQ(busy->Alloc(), nullptr);  // Nothing more to reclaim.
  EXPECT_EQ(busy->Stats().failed, 1u);
  EXPECT_EQ(busy->Stats().allocated, 6u);
  for (void* object : objects) busy->Free(object);
}

TEST(DumpPoolsTest, ListsEveryLivePoolInTextAndJson) {
  std::unique_ptr<Pool> sessions = MakePool("sessions", 96);
  std::unique_ptr<Pool> buffers = MakePool("buffers \"16k\"", 16384);
  void* a = sessions->Alloc();
  void* b = sessions->Alloc();
  sessions->Free(b);
  void* buffer = buffers->Alloc();
  buffers->Free(buffer);
  buffers->Free(buffers->Alloc());
  const std::string text = DumpPools();
  EXPECT_NE(text.find("sessions"), std::string::npos) << text;
  EXPECT_NE(text.find(std::string(BackendName())), std::string::npos) << text;
  const std::string json = DumpPools(DumpFormat::kJson);
  EXPECT_NE(json.find("{\"name\":\"sessions\",\"object_size\":96,\"slot_size\":"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(",\"allocated\":2,\"used\":1,\"free\":1,\"failed\":0,"), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"name\":\"buffers \\\"16k\\\"\""), std::string::npos) << json;
  std::printf("%s\n%s", text.c_str(), json.c_str());  // The README's example.
  sessions->Free(a);
  buffers.reset();
  EXPECT_EQ(DumpPools(DumpFormat::kJson).find("buffers"), std::string::npos);
}

}  // namespace
}  // namespace poolguard
