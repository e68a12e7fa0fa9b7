// The pool contract, written only against pool/pool.h: every backend must pass.
//
// With POOLGUARD_FAIL_EVERY_NTH=N in the environment (the contract_test_fail3
// and _fail17 targets), every Nth request to the system fails for the whole
// run. The contract still holds: each Alloc() below goes through Alloc(pool),
// which accepts a nullptr only when it was injected, checks that it counted
// in `failed` and changed no other stat, and retries; `failed` expectations
// are about the failures a test provokes itself (Failed(pool)).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pool/failure_injection.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

using ::testing::HasSubstr;

// Failure injection for the whole run, from the environment.
class InjectionEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (const char* every_nth = std::getenv("POOLGUARD_FAIL_EVERY_NTH")) {
      SystemAllocFailures failures;
      failures.every_nth = std::strtoull(every_nth, nullptr, 10);
      SetSystemAllocFailures(failures);
      std::printf("failure injection: POOLGUARD_FAIL_EVERY_NTH=%llu\n",
                  static_cast<unsigned long long>(failures.every_nth));
    }
  }
  void TearDown() override { ClearSystemAllocFailures(); }
};
[[maybe_unused]] const ::testing::Environment* const kInjection =
    ::testing::AddGlobalTestEnvironment(new InjectionEnvironment);

// Failures injected into each pool's Alloc() calls (tests are single-threaded).
std::map<const Pool*, size_t>& InjectedFailures() {
  static auto* failures = new std::map<const Pool*, size_t>;
  return *failures;
}

// pool.Alloc(), retried past injected failures. A nullptr is accepted only if
// the system memory layer injected it, and then it must count in `failed`
// and leave every other stat as it was. Returns nullptr for any other failure,
// for the caller to assert on.
void* Alloc(Pool& pool) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t injected = InjectedSystemAllocFailures();
    const PoolStats before = pool.Stats();
    void* object = pool.Alloc();
    if (object != nullptr || InjectedSystemAllocFailures() == injected) return object;
    const PoolStats after = pool.Stats();
    EXPECT_EQ(after.failed, before.failed + 1) << pool.name();
    EXPECT_EQ(after.allocated, before.allocated) << pool.name();
    EXPECT_EQ(after.used, before.used) << pool.name();
    EXPECT_EQ(after.free, before.free) << pool.name();
    ++InjectedFailures()[&pool];
  }
  ADD_FAILURE() << "64 injected failures in a row";
  return nullptr;
}

// The pool's failed count, less the failures injected into it.
size_t Failed(const Pool& pool) { return pool.Stats().failed - InjectedFailures()[&pool]; }

std::unique_ptr<Pool> MakePool(PoolOptions options) {
  // Only an injected failure may refuse a valid pool; then try again.
  absl::StatusOr<std::unique_ptr<Pool>> pool;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t injected = InjectedSystemAllocFailures();
    pool = Pool::Create(options);
    if (pool.ok() || InjectedSystemAllocFailures() == injected) break;
  }
  EXPECT_TRUE(pool.ok()) << pool.status();
  if (!pool.ok()) return nullptr;
  InjectedFailures().erase(pool->get());  // A new pool at an old address.
  return *std::move(pool);
}

std::unique_ptr<Pool> MakePool(std::string name, size_t object_size, size_t min_free = 0,
                               size_t max_objects = 0) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = object_size;
  options.min_free = min_free;
  options.max_objects = max_objects;
  return MakePool(options);
}

void ExpectStats(const Pool& pool, size_t allocated, size_t used, size_t free) {
  const PoolStats stats = pool.Stats();
  EXPECT_EQ(stats.allocated, allocated) << pool.name();
  EXPECT_EQ(stats.used, used) << pool.name();
  EXPECT_EQ(stats.free, free) << pool.name();
}

// poolguard_backend() (defs.bzl) builds this test once per backend, naming
// it in POOLGUARD_EXPECTED_BACKEND; //tests:selected_backend_contract_test
// links //pool, whichever backend --//pool:backend picked.
#define POOLGUARD_STRINGIZE_(x) #x
#define POOLGUARD_STRINGIZE(x) POOLGUARD_STRINGIZE_(x)
TEST(BackendNameTest, IsTheBackendThisTestWasBuiltFor) {
#if defined(POOLGUARD_EXPECTED_BACKEND)
  EXPECT_EQ(BackendName(), POOLGUARD_STRINGIZE(POOLGUARD_EXPECTED_BACKEND));
#else
  EXPECT_FALSE(BackendName().empty());
#endif
}

TEST(CreateTest, RejectsZeroObjectSize) {
  PoolOptions options;
  options.name = "zero";
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("object_size"));
  EXPECT_THAT(pool.status().message(), HasSubstr("zero"));
}

TEST(CreateTest, RejectsAlignmentThatIsNotAPowerOfTwo) {
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{96}}) {
    PoolOptions options;
    options.name = "odd";
    options.object_size = 64;
    options.alignment = alignment;
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    ASSERT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument) << alignment;
    EXPECT_THAT(pool.status().message(), HasSubstr("alignment"));
  }
}

TEST(CreateTest, RejectsShapesNoAllocationCanSatisfyNamingTheFieldAndTheMaximum) {
  struct Shape {
    size_t object_size;
    size_t alignment;
    const char* field;
  };
  for (const Shape& shape : {
           Shape{SIZE_MAX - 8, 16, "object_size"},
           Shape{SIZE_MAX / 2, 16, "object_size"},
           Shape{Pool::kMaxObjectSize + 1, 16, "object_size"},
           Shape{Pool::kMaxObjectSize - 1, 4096, "object_size"},  // Fine: rounds to the maximum.
           Shape{64, size_t{1} << 62, "alignment"},
           Shape{64, Pool::kMaxAlignment * 2, "alignment"},
       }) {
    PoolOptions options;
    options.name = "impossible";
    options.object_size = shape.object_size;
    options.alignment = shape.alignment;
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    if (shape.object_size == Pool::kMaxObjectSize - 1) {
      // The largest shape there is: created (nothing is allocated yet).
      EXPECT_TRUE(pool.ok()) << pool.status();
      continue;
    }
    ASSERT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument)
        << shape.object_size << " / " << shape.alignment;
    EXPECT_THAT(pool.status().message(), HasSubstr(shape.field));
    EXPECT_THAT(pool.status().message(), HasSubstr("maximum"));
    EXPECT_THAT(pool.status().message(), HasSubstr("impossible"));
  }
}

TEST(CreateTest, RejectsSizesWhoseRoundingOverflows) {
  PoolOptions options;
  options.name = "huge";
  options.object_size = SIZE_MAX - 10;
  options.alignment = 64;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("object_size"));

  options.object_size = (size_t{1} << 63) + 1;
  options.alignment = size_t{1} << 63;
  pool = Pool::Create(options);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateTest, AcceptsTinyObjects) {
  std::unique_ptr<Pool> pool = MakePool("tiny", 1);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->object_size(), 1u);
  EXPECT_GE(pool->slot_size(), sizeof(void*));
  void* object = Alloc(*pool);
  ASSERT_NE(object, nullptr);
  static_cast<char*>(object)[0] = 'x';
  pool->Free(object);
}

TEST(AllocTest, HonoursAlignment) {
  for (size_t alignment = 1; alignment <= 4096; alignment *= 2) {
    PoolOptions options;
    options.name = "aligned";
    options.object_size = 24;
    options.alignment = alignment;
    std::unique_ptr<Pool> pool = MakePool(options);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->slot_size() % pool->alignment(), 0u);
    std::vector<void*> objects;
    for (int i = 0; i < 16; ++i) {
      void* object = Alloc(*pool);
      ASSERT_NE(object, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(object) % alignment, 0u) << "alignment " << alignment;
      objects.push_back(object);
    }
    for (void* object : objects) pool->Free(object);
  }
}

TEST(AllocTest, DefaultAlignmentIsMaxAlign) {
  std::unique_ptr<Pool> pool = MakePool("default", 3);
  void* object = Alloc(*pool);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(object) % alignof(std::max_align_t), 0u);
  pool->Free(object);
}

TEST(AllocTest, ObjectsAreDistinctAndKeepTheirContents) {
  constexpr size_t kSize = 40;
  std::unique_ptr<Pool> pool = MakePool("distinct", kSize);
  std::vector<unsigned char*> objects;
  for (int i = 0; i < 500; ++i) {
    auto* object = static_cast<unsigned char*>(Alloc(*pool));
    ASSERT_NE(object, nullptr);
    std::memset(object, i & 0xff, kSize);
    objects.push_back(object);
  }
  EXPECT_EQ(std::set<unsigned char*>(objects.begin(), objects.end()).size(), objects.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    for (size_t b = 0; b < kSize; ++b) {
      ASSERT_EQ(objects[i][b], i & 0xff) << "object " << i << " byte " << b;
    }
  }
  for (unsigned char* object : objects) pool->Free(object);
}

TEST(AllocTest, FreedObjectsAreReused) {
  std::unique_ptr<Pool> pool = MakePool("reuse", 64);
  std::set<void*> seen;
  for (int i = 0; i < 4; ++i) seen.insert(Alloc(*pool));
  for (void* object : seen) pool->Free(object);
  ExpectStats(*pool, 4, 0, 4);
  for (int round = 0; round < 100; ++round) {
    std::vector<void*> objects;
    for (int i = 0; i < 4; ++i) {
      void* object = Alloc(*pool);
      EXPECT_TRUE(seen.count(object)) << "round " << round;
      objects.push_back(object);
    }
    for (void* object : objects) pool->Free(object);
  }
  ExpectStats(*pool, 4, 0, 4);
}

TEST(FreeTest, NullIsANoOp) {
  std::unique_ptr<Pool> pool = MakePool("null", 16);
  pool->Free(nullptr);
  ExpectStats(*pool, 0, 0, 0);
}

TEST(StatsTest, CountsAllocatedUsedAndFree) {
  std::unique_ptr<Pool> pool = MakePool("stats", 32);
  ExpectStats(*pool, 0, 0, 0);
  std::vector<void*> objects;
  for (int i = 0; i < 10; ++i) objects.push_back(Alloc(*pool));
  ExpectStats(*pool, 10, 10, 0);
  for (int i = 0; i < 4; ++i) {
    pool->Free(objects.back());
    objects.pop_back();
  }
  ExpectStats(*pool, 10, 6, 4);
  objects.push_back(Alloc(*pool));
  ExpectStats(*pool, 10, 7, 3);
  EXPECT_EQ(Failed(*pool), 0u);
  for (void* object : objects) pool->Free(object);
  ExpectStats(*pool, 10, 0, 10);
}

TEST(FlushTest, ReleasesEveryFreeObject) {
  std::unique_ptr<Pool> pool = MakePool("flush", 128);
  std::vector<void*> objects;
  for (int i = 0; i < 20; ++i) objects.push_back(Alloc(*pool));
  for (int i = 0; i < 15; ++i) {
    pool->Free(objects.back());
    objects.pop_back();
  }
  ExpectStats(*pool, 20, 5, 15);
  pool->Flush();
  ExpectStats(*pool, 5, 5, 0);
  // The pool still works after a flush, and in-use objects are untouched.
  void* object = Alloc(*pool);
  ASSERT_NE(object, nullptr);
  ExpectStats(*pool, 6, 6, 0);
  pool->Free(object);
  for (void* o : objects) pool->Free(o);
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
  pool->Flush();  // Flushing an empty pool is fine.
  ExpectStats(*pool, 0, 0, 0);
}

TEST(GcAllTest, KeepsMinFreeInEveryPool) {
  struct Case {
    size_t min_free;
    size_t free_before;
  };
  const std::vector<Case> cases = {{0, 10}, {3, 10}, {10, 10}, {20, 10}, {5, 0}};
  std::vector<std::unique_ptr<Pool>> pools;
  for (const Case& c : cases) {
    pools.push_back(MakePool("gc", 48, c.min_free));
    Pool& pool = *pools.back();
    std::vector<void*> objects;
    for (size_t i = 0; i < c.free_before + 2; ++i) objects.push_back(Alloc(pool));
    for (size_t i = 0; i < c.free_before; ++i) {
      pool.Free(objects.back());
      objects.pop_back();
    }
    // Two objects stay in use through the gc; freed after the check.
    ASSERT_EQ(pool.Stats().free, c.free_before);
    for (void* object : objects) pool.Free(object);  // back to free_before + 2
  }
  GcAll();
  for (size_t i = 0; i < cases.size(); ++i) {
    const PoolStats stats = pools[i]->Stats();
    const size_t free_before = cases[i].free_before + 2;
    EXPECT_EQ(stats.allocated - stats.used, std::min(cases[i].min_free, free_before))
        << "case " << i;
    EXPECT_EQ(stats.used, 0u);
  }
}

TEST(GcAllTest, SkipsDestroyedPools) {
  std::unique_ptr<Pool> kept = MakePool("kept", 16);
  {
    std::unique_ptr<Pool> gone = MakePool("gone", 16);
    gone->Free(Alloc(*gone));
  }
  kept->Free(Alloc(*kept));
  GcAll();
  ExpectStats(*kept, 0, 0, 0);
}

TEST(MaxObjectsTest, AllocFailsPastTheLimitAndRecovers) {
  std::unique_ptr<Pool> pool = MakePool("limited", 64, 0, 3);
  void* a = Alloc(*pool);
  void* b = Alloc(*pool);
  void* c = Alloc(*pool);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(pool->Alloc(), nullptr);
  EXPECT_EQ(pool->Alloc(), nullptr);
  EXPECT_EQ(Failed(*pool), 2u);
  ExpectStats(*pool, 3, 3, 0);
  pool->Free(b);
  void* d = Alloc(*pool);
  EXPECT_EQ(d, b);  // The only free object.
  EXPECT_EQ(pool->Alloc(), nullptr);
  EXPECT_EQ(Failed(*pool), 3u);
  // Flushed objects no longer count against the limit.
  pool->Free(a);
  pool->Flush();
  void* e = Alloc(*pool);
  EXPECT_NE(e, nullptr);
  ExpectStats(*pool, 3, 3, 0);
  for (void* object : {c, d, e}) pool->Free(object);
}

TEST(MaxObjectsTest, RejectsLimitsTheBackendCannotCount) {
  PoolOptions options;
  options.name = "too-many";
  options.object_size = 8;
  options.max_objects = SIZE_MAX;
  // Only an injected failure may refuse the memory for a pool; try again.
  absl::StatusOr<std::unique_ptr<Pool>> pool;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t injected = InjectedSystemAllocFailures();
    pool = Pool::Create(options);
    if (pool.ok() || InjectedSystemAllocFailures() == injected) break;
  }
  if (pool.ok()) {
    SUCCEED() << BackendName() << " counts up to SIZE_MAX objects";
  } else {
    EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(pool.status().message(), HasSubstr("max_objects"));
  }
}

// Many live pools (tlcache once gave a thread cache to the first 16 only):
// every one keeps the whole contract.
TEST(ManyPoolsTest, FortyPoolsKeepExactStats) {
  std::vector<std::unique_ptr<Pool>> pools;
  for (int i = 0; i < 40; ++i) pools.push_back(MakePool("many", 32, /*min_free=*/1));
  for (auto& pool : pools) {
    void* a = Alloc(*pool);
    void* b = Alloc(*pool);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    pool->Free(a);
    ExpectStats(*pool, 2, 1, 1);
    pool->Free(b);
    ExpectStats(*pool, 2, 0, 2);
  }
  GcAll();
  for (auto& pool : pools) ExpectStats(*pool, 1, 0, 1);
  for (auto& pool : pools) {
    pool->Flush();
    ExpectStats(*pool, 0, 0, 0);
  }
}

// Objects freed on threads that then exit stay counted as free, and a flush
// from another thread releases them all.
TEST(ThreadsTest, FreesOnExitedThreadsAreCountedAndFlushed) {
  std::unique_ptr<Pool> pool = MakePool("threads", 64);
  std::vector<void*> objects;
  for (int i = 0; i < 300; ++i) objects.push_back(Alloc(*pool));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&pool, &objects, t] {
      for (int i = t * 100; i < (t + 1) * 100; ++i) pool->Free(objects[i]);
      // Some allocations on this thread too, given back before it exits
      // (an injected failure gives nullptr, which Free() ignores; it counts
      // only in `failed`, which this test does not check).
      std::vector<void*> mine;
      for (int i = 0; i < 10; ++i) mine.push_back(pool->Alloc());
      for (void* object : mine) pool->Free(object);
    });
  }
  for (std::thread& thread : threads) thread.join();
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.used, 0u);
  EXPECT_EQ(stats.allocated, stats.free);
  pool->Flush();
  ExpectStats(*pool, 0, 0, 0);
}

// A thread keeps objects of a pool in its cache while another thread
// destroys the pool, then the first thread uses a new pool (which may reuse
// the dead pool's cache slot).
TEST(ThreadsTest, PoolDestroyedWhileAnotherThreadCachesItsObjects) {
  std::unique_ptr<Pool> first = MakePool("first", 32);
  std::unique_ptr<Pool> second;
  std::atomic<int> phase{0};
  std::thread user([&] {
    // Alloc(pool) is safe here: the main thread waits on `phase` meanwhile.
    first->Free(Alloc(*first));
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    void* object = Alloc(*second);
    ASSERT_NE(object, nullptr);
    second->Free(object);
    ExpectStats(*second, 1, 0, 1);
  });
  while (phase.load() != 1) std::this_thread::yield();
  ExpectStats(*first, 1, 0, 1);
  first.reset();
  second = MakePool("second", 32);
  phase.store(2);
  user.join();
  ExpectStats(*second, 1, 0, 1);
  second->Flush();
  ExpectStats(*second, 0, 0, 0);
}

#ifndef NDEBUG
TEST(PoolDeathTest, DestroyingAPoolWithObjectsInUseNamesThePool) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Pool> pool = MakePool("leaky-sessions", 32);
        Alloc(*pool);
        pool.reset();
      },
      "pool 'leaky-sessions' destroyed with 1 object");
}
#endif

}  // namespace
}  // namespace poolguard
