// //tools:bench's workloads on one pool backend (pool_bench_<backend>), plus
// the cost of Flush() and GcAll() under load and the memory they return.
#include <chrono>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "bench/workloads.h"
#include "benchmark/benchmark.h"
#include "pool/pool.h"

namespace poolguard::bench {
namespace {

std::unique_ptr<Pool> MakePool(const char* name, size_t min_free,
                               size_t object_size = kObjectSize) {
  PoolOptions options;
  options.name = name;
  options.object_size = object_size;
  options.alignment = 64;
  options.min_free = min_free;
  return *Pool::Create(options);
}

// One pool for the whole run, never destroyed: threads of a run share it.
// Created in main() before any benchmark (no guard on the access).
Pool* shared_pool = nullptr;

// The shapes' pools, one per object size (bench/shapes.h), made in main().
template <size_t kSize>
Pool* sized_pool = nullptr;

struct PoolSubject {
  static constexpr bool kCrossThread = true;
  BENCH_INLINE static void* Alloc() { return shared_pool->Alloc(); }
  BENCH_INLINE static void Free(void* object) { shared_pool->Free(object); }

  template <size_t kSize>
  struct Sized {
    BENCH_INLINE static void* Alloc() { return sized_pool<kSize>->Alloc(); }
    BENCH_INLINE static void Free(void* object) { sized_pool<kSize>->Free(object); }
    static void Flush() { sized_pool<kSize>->Flush(); }
  };
};

// Thread 0 fills the pool with free objects (256 allocated, then freed:
// they sit in its cache and the shared level) and times Flush() or GcAll();
// the other threads meanwhile run batches of 32 on the same pool, so their
// caches hold objects too. Reported: ns per Flush()/GcAll() call
// (`op_ns`, thread 0 only) and bytes returned per call (`bytes_returned`).
template <bool kGc>
void FlushUnderLoad(benchmark::State& state) {
  static Pool* pool = MakePool(kGc ? "gc" : "flush", 16).release();
  constexpr int kFill = 256;
  void* objects[kFill];
  double op_ns = 0, returned = 0, calls = 0;
  for (auto _ : state) {
    if (state.thread_index() == 0) {
      for (void*& object : objects) {
        object = pool->Alloc();
        Touch(object);
      }
      for (void* object : objects) pool->Free(object);
      const size_t before = pool->Stats().allocated;
      const auto start = std::chrono::steady_clock::now();
      if (kGc) {
        GcAll();
      } else {
        pool->Flush();
      }
      const auto end = std::chrono::steady_clock::now();
      const size_t after = pool->Stats().allocated;
      op_ns += std::chrono::duration<double, std::nano>(end - start).count();
      returned += before > after ? static_cast<double>(before - after) * pool->slot_size() : 0;
      calls += 1;
    } else {
      for (int i = 0; i < 32; ++i) {
        objects[i] = pool->Alloc();
        Touch(objects[i]);
      }
      for (int i = 0; i < 32; ++i) pool->Free(objects[i]);
    }
  }
  // Summed over threads: only thread 0 contributes.
  state.counters["op_ns"] = calls > 0 ? op_ns / calls : 0;
  state.counters["bytes_returned"] = calls > 0 ? returned / calls : 0;
  state.counters["flush_calls"] = calls;
}

// pool_count (a shape: bench/shapes.h): range(1) live pools of range(0)
// bytes, used in turn: each iteration is one alloc+free pair on the next
// pool (what a server with many pools does when a request touches several);
// each thread starts at a pool of its own. The pools are made once, for the
// largest count, and reused by the smaller ones.
inline constexpr int kPoolCounts[] = {1, 16, 17, 100, 1000};

template <size_t kSize>
void PoolCount(benchmark::State& state) {
  static std::vector<Pool*>* pools = [] {
    auto* all = new std::vector<Pool*>;
    for (int i = 0; i < kPoolCounts[std::size(kPoolCounts) - 1]; ++i) {
      all->push_back(MakePool("count", 0, kSize).release());
    }
    return all;
  }();
  const size_t n = static_cast<size_t>(state.range(1));
  size_t next = static_cast<size_t>(state.thread_index()) % n;
  for (size_t i = 0; i < n; ++i) (*pools)[i]->Free((*pools)[i]->Alloc());
  for (auto _ : state) {
    Pool* pool = (*pools)[next];
    if (++next == n) next = 0;
    void* object = pool->Alloc();
    Touch(object);
    pool->Free(object);
  }
  SetShapeCounters(state, 1, kSize, state.threads());
  state.counters["pools"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kAvgThreads);
}

template <size_t kSize>
void RegisterPoolCount(const std::string& subject) {
  for (int pools : kPoolCounts) {
    auto* b = benchmark::RegisterBenchmark((subject + "|pool_count").c_str(), &PoolCount<kSize>);
    b->Args({static_cast<int64_t>(kSize), pools})->UseRealTime();
    for (int t : kShapeThreadCounts) b->Threads(t);
  }
}

}  // namespace
}  // namespace poolguard::bench

int main(int argc, char** argv) {
  using namespace poolguard::bench;
  shared_pool = MakePool("bench", 0).release();
  const std::string subject(poolguard::BackendName());
  RegisterWorkloads<PoolSubject>(subject);
  for (int t : kThreadCounts) {
    benchmark::RegisterBenchmark((subject + "|flush").c_str(), &FlushUnderLoad<false>)
        ->Threads(t)
        ->UseRealTime();
    benchmark::RegisterBenchmark((subject + "|gcall").c_str(), &FlushUnderLoad<true>)
        ->Threads(t)
        ->UseRealTime();
  }
  sized_pool<kShapeSizes[0]> = MakePool("shape", 0, kShapeSizes[0]).release();
  sized_pool<kShapeSizes[1]> = MakePool("shape", 0, kShapeSizes[1]).release();
  RegisterShapes<PoolSubject>(subject);
  RegisterPoolCount<kShapeSizes[0]>(subject);
  RegisterPoolCount<kShapeSizes[1]>(subject);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
