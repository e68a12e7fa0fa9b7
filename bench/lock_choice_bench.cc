// Which lock should the `locked` backend use? The same backend code with a
// SpinLock and with absl::Mutex, 64-byte objects, each thread allocating a
// batch of 8 then freeing it, 1, 2 and 4 threads (on 2 cores, 4 threads
// oversubscribe, which is where a preempted lock holder hurts spinners).
//
//   bazel run -c opt //bench:lock_choice_bench -- \
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The figures that decided it are in backends/locked/locked_backend.h.

#include <array>

#include "absl/synchronization/mutex.h"
#include "backends/locked/locked_backend.h"
#include "benchmark/benchmark.h"
#include "pool/layout.h"

namespace poolguard::internal {
namespace {

// Adapts absl::Mutex to the SpinLock interface, for this measurement.
class ABSL_LOCKABLE MutexLock {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    POOLGUARD_SCHED_POINT(kLock);
    mu_.Lock();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    POOLGUARD_SCHED_POINT(kUnlock);
    mu_.Unlock();
  }

 private:
  absl::Mutex mu_;
};

const PoolLayout& Layout() {
  static const PoolLayout* layout = [] {
    auto* l = new PoolLayout;
    l->name = "bench";
    l->object_size = 64;
    l->slot_size = 64;
    l->alignment = 16;
    l->max_objects = ~size_t{0};
    return l;
  }();
  return *layout;
}

template <typename Lock>
void BM_LockedBatch8(benchmark::State& state) {
  // One backend shared by all threads of the run, never destroyed (threads of
  // the next run may still be finishing theirs).
  static auto* backend = new BasicLockedBackend<Lock>(Layout());
  std::array<void*, 8> objects;
  for (auto _ : state) {
    for (void*& object : objects) object = backend->Alloc();
    for (void* object : objects) backend->Free(object);
  }
  state.SetItemsProcessed(state.iterations() * objects.size());
  // ns per alloc+free pair, per thread.
  state.counters["ns_per_pair"] =
      benchmark::Counter(static_cast<double>(state.iterations() * objects.size()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK_TEMPLATE(BM_LockedBatch8, SpinLock)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_LockedBatch8, MutexLock)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace
}  // namespace poolguard::internal

BENCHMARK_MAIN();
