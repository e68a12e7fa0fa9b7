// The shapes of //tools:bench: fixed-size versions of the workloads people
// compare allocators with (mimalloc-bench's larson, xmalloc-test,
// cache-scratch, mstress/mleak), at two object sizes, written once against a
// sized subject:
//
//   struct Subject {
//     static constexpr bool kHasFlush;   // Flush() gives cached memory back
//     template <size_t kSize> struct Sized {
//       BENCH_INLINE static void* Alloc();
//       BENCH_INLINE static void Free(void* object);
//       static void Flush();             // a pool's Flush(); malloc: nothing
//     };
//   };
//
// Every shape reports the counters `ops_per_iter` (operations per iteration
// of one thread; an operation is one allocation and the free that balances
// it), `object_size`, `threads` and `rss_peak_kb`; tools/bench.py divides
// Google Benchmark's wall time per iteration (with T threads: the wall time
// over the iterations of all T) by ops_per_iter: ns per operation of the
// whole process. It runs
// every (subject, shape, object size, threads) as a process of its own, so
// that the process's peak RSS is the shape's; shapes that measure memory at
// a point of their own report it in counters (`..._kb`).
//
// Each shape does its first-time work (binding caches, first requests to the
// system) before its timed loop, so that a short run (Google Benchmark may
// keep a first run of one iteration when it takes long enough) does not
// report it as the steady state.
//
// The shapes, as bench.py documents them:
//   larson         every thread replaces random objects of a set of
//                  kLarsonSlots, and the sets move to the next thread each
//                  round, so most frees are of another thread's objects;
//   xmalloc        threads in pairs: one only allocates, the other only frees
//                  (one thread: a batch allocated, then freed, by itself);
//   cache_scratch  each thread frees an object thread 0 allocated for it,
//                  then allocates, writes and frees its own over and over: an
//                  allocator that hands threads neighbouring memory makes
//                  them write one cache line;
//   churn          waves of `threads` short-lived threads (10,000 threads in
//                  all), each leaving survivors that the next wave frees;
//                  memory after the first 100 threads and at the end;
//   idle_caches    every thread allocates and frees a burst, then idles:
//                  the memory they keep, then after Flush().

#ifndef POOLGUARD_BENCH_SHAPES_H_
#define POOLGUARD_BENCH_SHAPES_H_

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bench/workloads.h"
#include "benchmark/benchmark.h"

namespace poolguard::bench {

inline constexpr size_t kShapeSizes[] = {64, 16 << 10};
inline constexpr int kShapeThreadCounts[] = {1, 2, 4, 16};
inline constexpr int kMaxShapeThreads = 16;

// The process's resident memory now, in KiB (/proc/self/statm).
inline long ResidentKb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// The process's peak resident memory since exec, in KiB (VmHWM). Not
// getrusage(): its ru_maxrss keeps the peak of the process before exec, and
// the parent that forked this one (the bench runner, in Python) is bigger
// than most shapes.
inline long PeakResidentKb() {
  long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    }
    std::fclose(f);
  }
  return kb;
}

// Writes the object's first cache line (all of it, for objects that small),
// as a user initializing a header would.
inline void WriteLine(void* object, size_t size) {
  auto* words = static_cast<volatile uint64_t*>(object);
  const size_t n = (size < 64 ? size : 64) / sizeof(uint64_t);
  for (size_t i = 0; i < n; ++i) words[i] = i;
}

// A reusable barrier for the benchmark's threads: spins a little, then
// yields (16 threads on 2 cores must give the CPU to the late ones).
class SpinBarrier {
 public:
  void Wait(int threads) {
    const uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == threads) {
      arrived_.store(0, std::memory_order_relaxed);
      // release: the next generation sees arrived_ reset.
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == generation) {
      if (++spins < 64) {
        __builtin_ia32_pause();
      } else {
        sched_yield();
      }
    }
  }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
};

inline SpinBarrier& ShapeBarrier() {
  static SpinBarrier* barrier = new SpinBarrier;
  return *barrier;
}

inline void SetShapeCounters(benchmark::State& state, double ops_per_iter, size_t size,
                             int threads) {
  state.counters["ops_per_iter"] =
      benchmark::Counter(ops_per_iter, benchmark::Counter::kAvgThreads);
  state.counters["object_size"] =
      benchmark::Counter(static_cast<double>(size), benchmark::Counter::kAvgThreads);
  state.counters["threads"] = benchmark::Counter(threads, benchmark::Counter::kAvgThreads);
  // Every thread reports the same process-wide figure: the average is it.
  state.counters["rss_peak_kb"] =
      benchmark::Counter(static_cast<double>(PeakResidentKb()), benchmark::Counter::kAvgThreads);
}

// A small generator per thread (xorshift64*): the random choices cost the
// same for every subject.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull | 1) {}
  uint32_t Below(uint32_t n) {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<uint32_t>(((state_ * 0x2545F4914F6CDD1Dull) >> 32) * n >> 32);
  }

 private:
  uint64_t state_;
};

// larson: kLarsonSlots objects per thread; each iteration a thread replaces
// kLarsonOps random objects of the set it holds (free one, allocate one),
// then every thread passes its set to the next thread (a barrier), so after
// the first round nearly every free is of an object another thread
// allocated. A fixed-size, thread-reusing version of Larson and Krishnan's
// server benchmark.
inline constexpr int kLarsonSlots = 512;
inline constexpr int kLarsonOps = 2048;

template <typename S, size_t kSize>
void Larson(benchmark::State& state) {
  using A = typename S::template Sized<kSize>;
  static void* sets[kMaxShapeThreads][kLarsonSlots];
  const int threads = state.threads();
  const int me = state.thread_index();
  Rng rng(me + 1);
  for (void*& object : sets[me]) {
    object = A::Alloc();
    Touch(object);
  }
  ShapeBarrier().Wait(threads);
  int round = 0;
  for (auto _ : state) {
    void** set = sets[(me + round) % threads];
    for (int i = 0; i < kLarsonOps; ++i) {
      void*& slot = set[rng.Below(kLarsonSlots)];
      A::Free(slot);
      slot = A::Alloc();
      Touch(slot);
    }
    ++round;
    ShapeBarrier().Wait(threads);
  }
  for (void* object : sets[(me + round) % threads]) A::Free(object);
  SetShapeCounters(state, kLarsonOps, kSize, threads);
}

// xmalloc: even threads allocate and pass batches to their odd partner
// through a ring; the partner frees them (bench/workloads.h's Ring). One
// thread: allocates a batch and frees it.
template <typename S, size_t kSize>
void Xmalloc(benchmark::State& state) {
  using A = typename S::template Sized<kSize>;
  constexpr int kPerIter = Ring::kBatch;
  void* batch[kPerIter];
  for (void*& object : batch) object = A::Alloc();
  for (void* object : batch) A::Free(object);
  if (state.threads() == 1) {
    for (auto _ : state) {
      for (void*& object : batch) {
        object = A::Alloc();
        Touch(object);
      }
      for (void* object : batch) A::Free(object);
    }
    SetShapeCounters(state, kPerIter, kSize, 1);
    return;
  }
  Ring& ring = Rings()[state.thread_index() / 2];
  const bool producer = state.thread_index() % 2 == 0;
  for (auto _ : state) {
    if (producer) {
      for (void*& object : batch) {
        object = A::Alloc();
        Touch(object);
      }
      ring.PushBatch(batch);
    } else {
      ring.PopBatch(batch);
      for (void* object : batch) A::Free(object);
    }
  }
  SetShapeCounters(state, kPerIter, kSize, state.threads());
}

// cache_scratch: thread 0 allocates one object per thread; each thread
// frees its own, then every iteration allocates an object, writes its first
// line kScratchWrites times, and frees it.
inline constexpr int kScratchWrites = 16;

template <typename S, size_t kSize>
void CacheScratch(benchmark::State& state) {
  using A = typename S::template Sized<kSize>;
  static void* given[kMaxShapeThreads];
  const int threads = state.threads();
  if (state.thread_index() == 0) {
    for (int i = 0; i < threads; ++i) given[i] = A::Alloc();
  }
  ShapeBarrier().Wait(threads);
  A::Free(given[state.thread_index()]);
  A::Free(A::Alloc());
  for (auto _ : state) {
    void* object = A::Alloc();
    for (int i = 0; i < kScratchWrites; ++i) WriteLine(object, kSize);
    A::Free(object);
  }
  SetShapeCounters(state, 1, kSize, threads);
}

// churn: one iteration is a wave of `threads` threads (range(1)), started
// and joined by the benchmark's thread. Each frees the kChurnKeep survivors
// its predecessor in the last wave left, then kChurnRounds times allocates
// kChurnBatch objects and frees all but one, which survives it. A fixed
// number of waves: 10,000 threads in all. Counters: resident memory after
// the first 100 threads and after all of them (the target: within 10%).
inline constexpr int kChurnRounds = 8;
inline constexpr int kChurnBatch = 64;
inline constexpr int kChurnKeep = kChurnRounds;
inline constexpr int kChurnThreadsInAll = 10000;

template <typename S, size_t kSize>
void Churn(benchmark::State& state) {
  using A = typename S::template Sized<kSize>;
  const int threads = static_cast<int>(state.range(1));
  static void* survivors[kMaxShapeThreads][kChurnKeep];
  auto work = [](void** keep) {
    for (int i = 0; i < kChurnKeep; ++i) {
      if (keep[i] != nullptr) A::Free(keep[i]);
    }
    void* batch[kChurnBatch];
    for (int r = 0; r < kChurnRounds; ++r) {
      for (void*& object : batch) {
        object = A::Alloc();
        Touch(object);
      }
      for (int i = 1; i < kChurnBatch; ++i) A::Free(batch[i]);
      keep[r] = batch[0];
    }
  };
  long started = 0, rss_after_100 = 0;
  std::vector<std::thread> wave;
  for (auto _ : state) {
    for (int t = 0; t < threads; ++t) wave.emplace_back(work, survivors[t]);
    for (std::thread& thread : wave) thread.join();
    wave.clear();
    started += threads;
    if (rss_after_100 == 0 && started >= 100) rss_after_100 = ResidentKb();
  }
  const long rss_at_end = ResidentKb();
  for (auto& keep : survivors) {
    for (void*& object : keep) {
      if (object != nullptr) A::Free(object);
      object = nullptr;
    }
  }
  // All of the wave's operations: the iterations are the benchmark thread's.
  SetShapeCounters(state, static_cast<double>(threads) * kChurnRounds * kChurnBatch, kSize,
                   threads);
  state.counters["threads_in_all"] = static_cast<double>(started);
  state.counters["rss_after_100_threads_kb"] = static_cast<double>(rss_after_100);
  state.counters["rss_after_all_threads_kb"] = static_cast<double>(rss_at_end);
}

// idle_caches: each iteration every thread allocates kIdleBurst objects and
// frees them. After the last one all threads stay (a barrier) while thread
// 0 reads resident memory, calls Flush() (a pool's; nothing for malloc),
// and reads it again.
inline constexpr int kIdleBurst = 512;

template <typename S, size_t kSize>
void IdleCaches(benchmark::State& state) {
  using A = typename S::template Sized<kSize>;
  const int threads = state.threads();
  std::vector<void*> burst(kIdleBurst);
  for (void*& object : burst) object = A::Alloc();
  for (void* object : burst) A::Free(object);
  for (auto _ : state) {
    for (void*& object : burst) {
      object = A::Alloc();
      Touch(object);
    }
    for (void* object : burst) A::Free(object);
  }
  ShapeBarrier().Wait(threads);
  if (state.thread_index() == 0) {
    state.counters["idle_rss_kb"] = static_cast<double>(ResidentKb());
    A::Flush();
    state.counters["idle_rss_after_flush_kb"] = static_cast<double>(ResidentKb());
  }
  // The others idle until thread 0 has measured.
  ShapeBarrier().Wait(threads);
  SetShapeCounters(state, kIdleBurst, kSize, threads);
}

// Registers every shape but pool_count (the pool bench adds it) for
// `subject`. Names are "<subject>|<shape>/<object size>/real_time/threads:T"
// (churn: "<subject>|churn/<object size>/<threads>/iterations:N/real_time").
template <typename S>
void RegisterShapes(const std::string& subject) {
  auto reg = [&](const char* shape, size_t size, void (*fn)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark((subject + "|" + shape).c_str(), fn);
    b->Arg(static_cast<int64_t>(size))->UseRealTime();
    for (int t : kShapeThreadCounts) b->Threads(t);
  };
  auto sized = [&](auto size_tag) {
    constexpr size_t kSize = decltype(size_tag)::value;
    reg("larson", kSize, &Larson<S, kSize>);
    reg("xmalloc", kSize, &Xmalloc<S, kSize>);
    reg("cache_scratch", kSize, &CacheScratch<S, kSize>);
    reg("idle_caches", kSize, &IdleCaches<S, kSize>);
    for (int t : kShapeThreadCounts) {
      benchmark::RegisterBenchmark((subject + "|churn").c_str(), &Churn<S, kSize>)
          ->Args({static_cast<int64_t>(kSize), t})
          ->Iterations((kChurnThreadsInAll + t - 1) / t)
          ->UseRealTime();
    }
  };
  sized(std::integral_constant<size_t, kShapeSizes[0]>{});
  sized(std::integral_constant<size_t, kShapeSizes[1]>{});
}

}  // namespace poolguard::bench

#endif  // POOLGUARD_BENCH_SHAPES_H_
