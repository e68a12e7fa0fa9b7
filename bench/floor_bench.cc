// The primitive floors of //tools:bench: the least work each kind of pool
// could do, on the same workloads. None ever gives memory back.
//
//   floor:array          a per-thread array of pointers (what a thread cache
//                        hit costs at best)
//   floor:tl_list        a per-thread free list linked through the objects
//   floor:cas_list       one shared free list, {head, tag} updated with a
//                        16-byte CAS (the lockless backend's floor; it reads
//                        a head's link before its CAS, which is only safe
//                        because it never frees)
//   floor:spinlock_list  one shared free list under pool/spinlock.h's SpinLock
//                        (the locked backend's floor)
//
// The per-thread floors cannot free across threads: in the producer/consumer
// workload they measure the hand-off alone (see workloads.h).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "bench/shapes.h"
#include "bench/workloads.h"
#include "benchmark/benchmark.h"
#include "pool/spinlock.h"

namespace poolguard::bench {
namespace {

void* NewObject() { return std::aligned_alloc(64, kObjectSize); }

struct ArrayFloor {
  static constexpr bool kCrossThread = false;
  // Trivially initialized: no TLS guard on the access, as in a thread cache.
  static inline thread_local void* objects[1024];
  static inline thread_local int count = 0;
  static __attribute__((noinline)) void Fill() {
    for (void*& object : objects) object = NewObject();
    count = 1024;
  }
  BENCH_INLINE static void* Alloc() {
    if (__builtin_expect(count == 0, 0)) Fill();
    return objects[--count];
  }
  BENCH_INLINE static void Free(void* object) { objects[count++] = object; }
};

struct TlListFloor {
  static constexpr bool kCrossThread = false;
  static inline thread_local void* head = nullptr;
  BENCH_INLINE static void* Alloc() {
    void* object = head;
    if (__builtin_expect(object == nullptr, 0)) return NewObject();
    head = *static_cast<void**>(object);
    return object;
  }
  BENCH_INLINE static void Free(void* object) {
    *static_cast<void**>(object) = head;
    head = object;
  }
};

struct CasListFloor {
  static constexpr bool kCrossThread = true;
  struct alignas(16) Head {
    void* ptr;
    uint64_t tag;
  };
  static inline Head head = {nullptr, 0};
  static unsigned __int128 Pack(Head h) {
    unsigned __int128 w;
    std::memcpy(&w, &h, 16);
    return w;
  }
  static bool Cas(Head& expected, Head desired) {
    unsigned __int128 e = Pack(expected);
    if (__atomic_compare_exchange_n(reinterpret_cast<unsigned __int128*>(&head), &e, Pack(desired),
                                    false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      return true;
    }
    std::memcpy(&expected, &e, 16);
    return false;
  }
  static Head Load() {
    Head h;
    h.tag = __atomic_load_n(&head.tag, __ATOMIC_RELAXED);
    h.ptr = __atomic_load_n(&head.ptr, __ATOMIC_RELAXED);
    return h;
  }
  BENCH_INLINE static void* Alloc() {
    Head h = Load();
    for (;;) {
      if (h.ptr == nullptr) return NewObject();
      void* next = __atomic_load_n(static_cast<void**>(h.ptr), __ATOMIC_RELAXED);
      if (Cas(h, Head{next, h.tag + 1})) return h.ptr;
    }
  }
  BENCH_INLINE static void Free(void* object) {
    Head h = Load();
    do {
      __atomic_store_n(static_cast<void**>(object), h.ptr, __ATOMIC_RELAXED);
    } while (!Cas(h, Head{object, h.tag + 1}));
  }
};

struct SpinLockListFloor {
  static constexpr bool kCrossThread = true;
  static inline internal::SpinLock lock;
  static inline void* head = nullptr;
  BENCH_INLINE static void* Alloc() {
    void* object;
    {
      internal::SpinLockHolder h(&lock);
      object = head;
      if (object != nullptr) head = *static_cast<void**>(object);
    }
    return object != nullptr ? object : NewObject();
  }
  BENCH_INLINE static void Free(void* object) {
    internal::SpinLockHolder h(&lock);
    *static_cast<void**>(object) = head;
    head = object;
  }
};

// The floor of pool_count: one per-thread array of free objects per pool
// (each a heap block, as a pool's cache is), used in turn, one alloc+free
// pair per pool: what any per-(thread, pool) cache costs once the pools'
// memory no longer fits the CPU's nearest cache.
struct PoolArray {
  int count = 0;
  void* objects[63];
};

// pool_count's floor, in the shape's form (bench/shapes.h): range(0)-byte
// objects, range(1) arrays. One thread only: the arrays are not per thread.
template <size_t kSize>
void PoolCountFloor(benchmark::State& state) {
  static std::vector<PoolArray*>* arrays = [] {
    auto* all = new std::vector<PoolArray*>;
    for (int i = 0; i < 1000; ++i) {
      auto* array = new (std::aligned_alloc(64, sizeof(PoolArray))) PoolArray;
      array->objects[array->count++] = std::aligned_alloc(64, kSize);
      all->push_back(array);
    }
    return all;
  }();
  const size_t n = static_cast<size_t>(state.range(1));
  size_t next = 0;
  for (auto _ : state) {
    PoolArray* array = (*arrays)[next];
    if (++next == n) next = 0;
    void* object = array->objects[--array->count];
    Touch(object);
    array->objects[array->count++] = object;
  }
  SetShapeCounters(state, 1, kSize, 1);
  state.counters["pools"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kAvgThreads);
}

}  // namespace
}  // namespace poolguard::bench

int main(int argc, char** argv) {
  using namespace poolguard::bench;
  RegisterWorkloads<ArrayFloor>("floor:array");
  RegisterWorkloads<TlListFloor>("floor:tl_list");
  RegisterWorkloads<CasListFloor>("floor:cas_list");
  RegisterWorkloads<SpinLockListFloor>("floor:spinlock_list");
  for (int pools : {1, 16, 17, 100, 1000}) {
    benchmark::RegisterBenchmark("floor:array|pool_count", &PoolCountFloor<kShapeSizes[0]>)
        ->Args({static_cast<int64_t>(kShapeSizes[0]), pools})
        ->Threads(1)
        ->UseRealTime();
    benchmark::RegisterBenchmark("floor:array|pool_count", &PoolCountFloor<kShapeSizes[1]>)
        ->Args({static_cast<int64_t>(kShapeSizes[1]), pools})
        ->Threads(1)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
