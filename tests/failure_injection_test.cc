// Failure injection in the system memory layer: Alloc() and Create() fail
// cleanly, count what they must, and leak nothing (LeakSanitizer checks the
// last part under --config=asan).

#include "pool/failure_injection.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

class FailureInjectionTest : public ::testing::Test {
 protected:
  void TearDown() override { ClearSystemAllocFailures(); }

  // A new pool, used once by this thread and flushed: a backend that keeps
  // a cache per thread has bound this thread's now, so the requests to the
  // system that follow are for objects. (A thread cache is memory from the
  // system too, refused like any other request: then the pool serves the
  // thread from its shared level; the tlcache backend's tests check that.)
  static std::unique_ptr<Pool> MakePool(size_t max_objects = 0) {
    PoolOptions options;
    options.name = "injected";
    options.object_size = 48;
    options.max_objects = max_objects;
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    EXPECT_TRUE(pool.ok()) << pool.status();
    if (!pool.ok()) return nullptr;
    void* object = (*pool)->Alloc();
    EXPECT_NE(object, nullptr);
    (*pool)->Free(object);
    (*pool)->Flush();
    return *std::move(pool);
  }
};

TEST_F(FailureInjectionTest, CreateReturnsResourceExhausted) {
  FailNextSystemAllocation();
  PoolOptions options;
  options.name = "refused";
  options.object_size = 16;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(pool.status().message().find("refused"), std::string_view::npos);
  // The next one works, and GcAll() does not trip over a half-made pool.
  pool = Pool::Create(options);
  ASSERT_TRUE(pool.ok());
  GcAll();
}

TEST_F(FailureInjectionTest, AllocFailsCleanlyAndRecovers) {
  std::unique_ptr<Pool> pool = MakePool();
  FailNextSystemAllocation();
  EXPECT_EQ(pool->Alloc(), nullptr);
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.allocated, 0u);
  EXPECT_EQ(stats.used, 0u);
  void* object = pool->Alloc();
  ASSERT_NE(object, nullptr);
  pool->Free(object);
  stats = pool->Stats();
  EXPECT_EQ(stats.allocated, 1u);
  EXPECT_EQ(stats.free, 1u);
}

TEST_F(FailureInjectionTest, EveryNthRequestFailsAndStatsDoNotDrift) {
  std::unique_ptr<Pool> pool = MakePool();
  const uint64_t injected_before = InjectedSystemAllocFailures();
  SystemAllocFailures failures;
  failures.every_nth = 3;
  SetSystemAllocFailures(failures);
  std::vector<void*> objects;
  size_t failed = 0;
  for (int i = 0; i < 30; ++i) {
    if (void* object = pool->Alloc()) {
      objects.push_back(object);
    } else {
      ++failed;
    }
  }
  EXPECT_EQ(failed, 10u);
  EXPECT_EQ(InjectedSystemAllocFailures() - injected_before, 10u);
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.failed, 10u);
  EXPECT_EQ(stats.allocated, objects.size());
  EXPECT_EQ(stats.used, objects.size());
  // Objects already in the pool are handed out without asking the system.
  for (void* object : objects) pool->Free(object);
  objects.clear();
  for (int i = 0; i < 20; ++i) objects.push_back(pool->Alloc());
  for (void* object : objects) EXPECT_NE(object, nullptr);
  for (void* object : objects) pool->Free(object);
  pool->Flush();
  stats = pool->Stats();
  EXPECT_EQ(stats.allocated, 0u);
  EXPECT_EQ(stats.used, 0u);
}

TEST_F(FailureInjectionTest, FailsOnceTheByteBudgetIsSpent) {
  std::unique_ptr<Pool> pool = MakePool();
  SystemAllocFailures failures;
  failures.after_bytes = 10 * pool->slot_size();
  SetSystemAllocFailures(failures);
  std::vector<void*> objects;
  while (void* object = pool->Alloc()) objects.push_back(object);
  EXPECT_EQ(objects.size(), 10u);
  EXPECT_EQ(pool->Stats().failed, 1u);
  for (void* object : objects) pool->Free(object);
}

TEST_F(FailureInjectionTest, RandomFailuresFollowTheSeed) {
  auto pattern = [](uint64_t seed) {
    std::unique_ptr<Pool> pool = MakePool();
    SystemAllocFailures failures;
    failures.probability = 0.3;
    failures.seed = seed;
    SetSystemAllocFailures(failures);
    std::vector<bool> failed;
    std::vector<void*> objects;
    for (int i = 0; i < 64; ++i) {
      void* object = pool->Alloc();
      failed.push_back(object == nullptr);
      if (object != nullptr) objects.push_back(object);
    }
    for (void* object : objects) pool->Free(object);
    ClearSystemAllocFailures();
    return failed;
  };
  EXPECT_EQ(pattern(7), pattern(7));
  EXPECT_NE(pattern(7), pattern(8));
}

}  // namespace
}  // namespace poolguard
