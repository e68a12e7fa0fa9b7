// //tools:bench's workloads on one pool backend (pool_bench_<backend>), plus
// the cost of Flush() and GcAll() under load and the memory they return.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bench/workloads.h"
#include "benchmark/benchmark.h"
#include "pool/pool.h"

namespace poolguard::bench {
namespace {

std::unique_ptr<Pool> MakePool(const char* name, size_t min_free) {
  PoolOptions options;
  options.name = name;
  options.object_size = kObjectSize;
  options.alignment = 64;
  options.min_free = min_free;
  return *Pool::Create(options);
}

// One pool for the whole run, never destroyed: threads of a run share it.
// Created in main() before any benchmark (no guard on the access).
Pool* shared_pool = nullptr;

struct PoolSubject {
  static constexpr bool kCrossThread = true;
  BENCH_INLINE static void* Alloc() { return shared_pool->Alloc(); }
  BENCH_INLINE static void Free(void* object) { shared_pool->Free(object); }
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

// pool_count: range(0) live pools of kObjectSize objects, used in turn: each
// iteration is one alloc+free pair on the next pool (what a server with many
// pools does when a request touches several). The pools are made once, for
// the largest count, and reused by the smaller ones.
void PoolCount(benchmark::State& state) {
  static std::vector<Pool*>* pools = [] {
    auto* all = new std::vector<Pool*>;
    for (int i = 0; i < 1000; ++i) all->push_back(MakePool("count", 0).release());
    return all;
  }();
  const size_t n = static_cast<size_t>(state.range(0));
  size_t next = 0;
  for (auto _ : state) {
    Pool* pool = (*pools)[next];
    if (++next == n) next = 0;
    void* object = pool->Alloc();
    Touch(object);
    pool->Free(object);
  }
  SetPairs(state, 1);
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
  for (int pools : {1, 16, 17, 100, 1000}) {
    benchmark::RegisterBenchmark((subject + "|pool_count").c_str(), &PoolCount)
        ->Arg(pools)
        ->Threads(1)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
