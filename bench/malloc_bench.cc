// //tools:bench's workloads on malloc()/free() of the same size. tools/bench.py
// runs it once per allocator with LD_PRELOAD (glibc when none is preloaded),
// and names the subject after the allocator (--subject=malloc:jemalloc, ...).
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/shapes.h"
#include "bench/workloads.h"
#include "benchmark/benchmark.h"

namespace poolguard::bench {
namespace {

struct MallocSubject {
  static constexpr bool kCrossThread = true;
  BENCH_INLINE static void* Alloc() { return std::malloc(kObjectSize); }
  BENCH_INLINE static void Free(void* object) { std::free(object); }

  // The shapes (bench/shapes.h): malloc of the shape's size. No allocator
  // here has a portable call that gives cached memory back: Flush() does
  // nothing, and the shapes' "after Flush()" figures are the same as before.
  template <size_t kSize>
  struct Sized {
    BENCH_INLINE static void* Alloc() { return std::malloc(kSize); }
    BENCH_INLINE static void Free(void* object) { std::free(object); }
    static void Flush() {}
  };
};

}  // namespace
}  // namespace poolguard::bench

int main(int argc, char** argv) {
  std::string subject = "malloc";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--subject=", 10) == 0) {
      subject = argv[i] + 10;
      argv[i] = argv[--argc];  // Not Google Benchmark's flag.
      --i;
    }
  }
  poolguard::bench::RegisterWorkloads<poolguard::bench::MallocSubject>(subject);
  poolguard::bench::RegisterShapes<poolguard::bench::MallocSubject>(subject);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
