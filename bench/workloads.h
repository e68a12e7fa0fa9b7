// The benchmark workloads of //tools:bench, written once against a "subject"
// (a pool backend, malloc/free, or a primitive floor):
//
//   struct Subject {
//     static constexpr bool kCrossThread;  // may free on another thread
//     BENCH_INLINE static void* Alloc();
//     BENCH_INLINE static void Free(void* object);
//   };
//
// BENCH_INLINE forces every subject's calls inline into the workload loops,
// so that no subject wins or loses by the compiler's inlining heuristics
// (what is out of line in the subject itself, such as malloc, stays so).
//
// Every workload reports real time per iteration (with T threads, Google
// Benchmark's: the wall time over the iterations of all T) and the counter
// `pairs_per_iter` of one thread; tools/bench.py divides one by the other: ns
// per alloc+free pair of the whole process. Objects are kObjectSize bytes; each allocated
// object gets one byte written, as a user would.

#ifndef POOLGUARD_TOOLS_BENCH_WORKLOADS_H_
#define POOLGUARD_TOOLS_BENCH_WORKLOADS_H_

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

#define BENCH_INLINE __attribute__((always_inline)) inline

namespace poolguard::bench {

inline constexpr size_t kObjectSize = 64;
inline constexpr int kThreadCounts[] = {1, 2, 4};

inline void Touch(void* object) {
  static_cast<volatile char*>(object)[0] = 1;
  benchmark::DoNotOptimize(object);
}

inline void SetPairs(benchmark::State& state, double pairs_per_iter) {
  state.counters["pairs_per_iter"] =
      benchmark::Counter(pairs_per_iter, benchmark::Counter::kAvgThreads);
}

// Same thread: allocate one object and free it.
template <typename S>
void Pair(benchmark::State& state) {
  for (auto _ : state) {
    void* object = S::Alloc();
    Touch(object);
    S::Free(object);
  }
  SetPairs(state, 1);
}

// Same thread: allocate N, hold them, free them (in allocation order).
template <typename S, int N>
void Batch(benchmark::State& state) {
  void* objects[N];
  for (auto _ : state) {
    for (int i = 0; i < N; ++i) {
      objects[i] = S::Alloc();
      Touch(objects[i]);
    }
    for (int i = 0; i < N; ++i) S::Free(objects[i]);
  }
  SetPairs(state, N);
}

// A single-producer single-consumer ring of pointers, one per thread pair,
// published kBatch at a time (one index store per batch, as a real hand-off
// queue would batch), so that the ring's own cache-line traffic stays small
// beside the allocator's.
class Ring {
 public:
  static constexpr size_t kSize = 1024;
  static constexpr size_t kBatch = 32;

  void PushBatch(void* const* objects) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    int spins = 0;
    while (tail + kBatch - head_.load(std::memory_order_acquire) > kSize) Wait(spins);
    for (size_t i = 0; i < kBatch; ++i) slots_[(tail + i) % kSize] = objects[i];
    tail_.store(tail + kBatch, std::memory_order_release);
  }
  void PopBatch(void** objects) {
    const size_t head = head_.load(std::memory_order_relaxed);
    int spins = 0;
    while (tail_.load(std::memory_order_acquire) - head < kBatch) Wait(spins);
    for (size_t i = 0; i < kBatch; ++i) objects[i] = slots_[(head + i) % kSize];
    head_.store(head + kBatch, std::memory_order_release);
  }

 private:
  static void Wait(int& spins) {
    if (++spins < 64) {
      __builtin_ia32_pause();
    } else {
      sched_yield();
    }
  }
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) void* slots_[kSize];
};

// One ring per pair of threads, for up to 16 threads.
inline Ring* Rings() {
  static Ring* rings = new Ring[8];
  return rings;
}

// Producer/consumer (xmalloc-test's shape): even threads allocate and pass
// each object to their odd partner, which frees it. Subjects that cannot free
// across threads (the per-thread floors) measure the hand-off alone: the
// producer sends objects from a fixed set, the consumer drops them.
template <typename S>
void ProducerConsumer(benchmark::State& state) {
  constexpr int kPerIter = Ring::kBatch;
  Ring& ring = Rings()[state.thread_index() / 2];
  const bool producer = state.thread_index() % 2 == 0;
  static void* fixed[kPerIter];
  if constexpr (!S::kCrossThread) {
    static bool filled = [] {
      for (void*& object : fixed) object = std::aligned_alloc(64, kObjectSize);
      return true;
    }();
    benchmark::DoNotOptimize(filled);
  }
  void* batch[kPerIter];
  for (auto _ : state) {
    if (producer) {
      for (int i = 0; i < kPerIter; ++i) {
        if constexpr (S::kCrossThread) {
          batch[i] = S::Alloc();
        } else {
          batch[i] = fixed[i];
        }
        Touch(batch[i]);
      }
      ring.PushBatch(batch);
    } else {
      ring.PopBatch(batch);
      for (int i = 0; i < kPerIter; ++i) {
        if constexpr (S::kCrossThread) {
          S::Free(batch[i]);
        } else {
          benchmark::DoNotOptimize(batch[i]);
        }
      }
    }
  }
  SetPairs(state, kPerIter);
}

// Registers the same-thread and producer/consumer workloads for `subject`.
// Names are "<subject>|<workload>".
template <typename S>
void RegisterWorkloads(const std::string& subject) {
  auto reg = [&](const char* workload, void (*fn)(benchmark::State&), std::vector<int> threads) {
    auto* b = benchmark::RegisterBenchmark((subject + "|" + workload).c_str(), fn);
    for (int t : threads) b->Threads(t);
    b->UseRealTime();
  };
  const std::vector<int> all(std::begin(kThreadCounts), std::end(kThreadCounts));
  reg("pair", &Pair<S>, all);
  reg("batch8", &Batch<S, 8>, all);
  reg("batch32", &Batch<S, 32>, all);
  reg("batch512", &Batch<S, 512>, all);
  reg("prodcons", &ProducerConsumer<S>, {2, 4});
}

}  // namespace poolguard::bench

#endif  // POOLGUARD_TOOLS_BENCH_WORKLOADS_H_
