// The tlcache backend's own behaviour, beyond the contract every backend
// passes: caches that adapt to the demand (and Flush() resets), a cache for
// every pool however many, a refused cache that is not fatal, and the memory
// a cache holds from the system going back with it.

#include "backends/tlcache/tlcache_backend.h"

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pool/failure_injection.h"
#include "pool/layout.h"
#include "pool/limits.h"

namespace poolguard::internal {
namespace {

PoolLayout Layout(size_t slot_size) {
  PoolLayout layout;
  layout.name = "test";
  layout.object_size = slot_size;
  layout.slot_size = slot_size;
  layout.alignment = alignof(std::max_align_t);
  layout.max_objects = TlcacheBackend::kMaxObjects;
  return layout;
}

void Cycle(TlcacheBackend& backend, int n) {
  std::vector<void*> held;
  for (int i = 0; i < n; ++i) held.push_back(backend.Alloc());
  for (void* object : held) backend.Free(object);
}

TEST(TlcacheBackendTest, ACacheGrowsForALargerWorkingSetAndFlushResetsIt) {
  const PoolLayout layout = Layout(64);
  TlcacheBackend backend(layout);
  std::thread([&] {
    Cycle(backend, 1);
    ASSERT_NE(backend.Mine(), nullptr);
    EXPECT_EQ(backend.Mine()->capacity, 64u);
    // Hold 512, free 512, a few times: the cache doubles each time it fills
    // having refilled since it last gave objects back.
    for (int i = 0; i < 6; ++i) Cycle(backend, 512);
    // The whole working set lives in the cache now (64 -> 128 -> 256 -> 512).
    EXPECT_EQ(backend.Mine()->capacity, 512u);
    EXPECT_EQ(backend.Mine()->count.load(), 512u);
    // Beyond it, growth stops at 1024 objects (64 KiB of 64-byte objects).
    for (int i = 0; i < 6; ++i) Cycle(backend, 3000);
    EXPECT_EQ(backend.Mine()->capacity, 1024u);
    const PoolStats stats = backend.Stats();
    EXPECT_EQ(stats.used, 0u);
    EXPECT_EQ(stats.free, stats.allocated);
    backend.Flush();
    EXPECT_EQ(backend.Mine()->capacity, 64u);
    EXPECT_EQ(backend.Stats().allocated, 0u);
    // A working set that fits never grows it.
    for (int i = 0; i < 6; ++i) Cycle(backend, 40);
    EXPECT_EQ(backend.Mine()->capacity, 64u);
  }).join();
}

TEST(TlcacheBackendTest, AOneWayFlowDoesNotGrowTheCaches) {
  const PoolLayout layout = Layout(64);
  TlcacheBackend backend(layout);
  std::vector<void*> objects;
  for (int i = 0; i < 2000; ++i) objects.push_back(backend.Alloc());
  // This thread only frees (a consumer of a producer's objects).
  std::thread([&] {
    for (void* object : objects) backend.Free(object);
    EXPECT_EQ(backend.Mine()->capacity, 64u);
  }).join();
  const PoolStats stats = backend.Stats();
  EXPECT_EQ(stats.used, 0u);
  EXPECT_EQ(stats.free, 2000u);
}

TEST(TlcacheBackendTest, CapacitiesAreBoundedInBytes) {
  const PoolLayout big = Layout(16384);
  TlcacheBackend backend(big);
  std::thread([&] {
    Cycle(backend, 1);
    EXPECT_EQ(backend.Mine()->capacity, 4u);  // 64 KiB of 16 KiB objects.
    for (int i = 0; i < 6; ++i) Cycle(backend, 64);
    EXPECT_EQ(backend.Mine()->capacity, 4u);
  }).join();
  backend.Flush();
}

TEST(TlcacheBackendTest, EveryPoolGetsACacheHoweverMany) {
  const PoolLayout layout = Layout(32);
  std::vector<std::unique_ptr<TlcacheBackend>> backends;
  for (int i = 0; i < 1000; ++i) backends.push_back(std::make_unique<TlcacheBackend>(layout));
  std::thread([&] {
    for (auto& backend : backends) {
      Cycle(*backend, 2);
      EXPECT_NE(backend->Mine(), nullptr);
    }
    for (auto& backend : backends) {
      // Served from the thread's cache: nothing went back to the shared list.
      EXPECT_EQ(backend->Mine()->count.load(), 2u);
    }
  }).join();
}

TEST(TlcacheBackendTest, ARefusedCacheIsNotFatal) {
  const PoolLayout layout = Layout(48);
  TlcacheBackend backend(layout);
  std::thread([&] {
    // The first request of this thread is its cache's memory: refused.
    FailNextSystemAllocation();
    void* object = backend.Alloc();
    ASSERT_NE(object, nullptr);  // Served by the shared level.
    EXPECT_EQ(backend.Mine(), nullptr);
    EXPECT_EQ(backend.Stats().used, 1u);
    backend.Free(object);  // Binds now.
    EXPECT_NE(backend.Mine(), nullptr);
    const PoolStats stats = backend.Stats();
    EXPECT_EQ(stats.used, 0u);
    EXPECT_EQ(stats.free, 1u);
    EXPECT_EQ(stats.failed, 0u);
  }).join();
  backend.Flush();
}

TEST(TlcacheBackendTest, ACachesMemoryGoesBackWithIt) {
  const PoolLayout layout = Layout(48);
  TlcacheBackend backend(layout);
  std::thread([&] {
    const size_t before = SystemBytesInUse();
    Cycle(backend, 1);
    backend.Flush();
    EXPECT_EQ(SystemBytesInUse(), before + ThreadCache::BytesFor(64));
    TlcacheBackend::ReleaseThreadCaches();
    EXPECT_EQ(SystemBytesInUse(), before);
    EXPECT_EQ(backend.Mine(), nullptr);
  }).join();
}

}  // namespace
}  // namespace poolguard::internal
