// A short, readable run of one backend: the pool API's behaviour on a simple
// scenario, then random multi-threaded op programs (the fuzzers' interpreter,
// with its owner-stamp and stats oracles) for a few seconds.
//
//   bazel run //tools:demo -- --seconds=5      # every backend, one after another
//
// Throughput printed here is informative only; benchmarks measure performance.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/free_running.h"
#include "fuzz/op_program.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

void PrintStats(const char* when, const Pool& pool) {
  const PoolStats s = pool.Stats();
  std::printf("  %-34s allocated %6zu  used %6zu  free %6zu  failed %zu\n", when, s.allocated,
              s.used, s.free, s.failed);
}

int Run(double seconds) {
  std::printf("backend %.*s\n", static_cast<int>(BackendName().size()), BackendName().data());

  PoolOptions options;
  options.name = "demo-sessions";
  options.object_size = 96;
  options.min_free = 100;
  options.max_objects = 5000;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (!pool.ok()) {
    std::fprintf(stderr, "demo: %s\n", std::string(pool.status().message()).c_str());
    return 1;
  }
  std::vector<void*> objects;
  for (int i = 0; i < 6000; ++i) {
    if (void* object = (*pool)->Alloc()) objects.push_back(object);
  }
  PrintStats("6000 allocs (max_objects 5000):", **pool);
  for (void* object : objects) (*pool)->Free(object);
  PrintStats("all freed:", **pool);
  GcAll();
  PrintStats("GcAll() (min_free 100):", **pool);
  (*pool)->Flush();
  PrintStats("Flush():", **pool);

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  size_t programs = 0;
  size_t ops = 0;
  for (uint64_t seed = 1; std::chrono::steady_clock::now() < deadline; ++seed) {
    fuzz::RandomProgramOptions program_options;
    program_options.threads = 2 + seed % 3;
    program_options.ops_per_thread = 2000;
    fuzz::RunFreeRunning(fuzz::RandomProgram(seed, program_options));
    ++programs;
    ops += program_options.threads * program_options.ops_per_thread;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "  stress: %zu random programs on 2-4 threads, %zu ops in %.1f s: every owner "
      "stamp and stats invariant held\n",
      programs, ops, elapsed);
  return 0;
}

}  // namespace
}  // namespace poolguard

int main(int argc, char** argv) {
  double seconds = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) {
      char* end = nullptr;
      seconds = std::strtod(argv[i] + 10, &end);
      if (end == argv[i] + 10 || *end != '\0' || seconds < 0) {
        std::fprintf(stderr, "demo: --seconds wants a number >= 0, got '%s'\n", argv[i] + 10);
        return 2;
      }
    } else {
      std::fprintf(stderr, "demo: unknown flag '%s' (flags: --seconds=N)\n", argv[i]);
      return 2;
    }
  }
  return poolguard::Run(seconds);
}
