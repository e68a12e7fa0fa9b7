// Soak test: random op programs on real threads, one after another for a
// bounded time, with failure injection and a process byte limit on, through
// the same interpreter and oracles as the fuzzers and stress tests.
//
// Each program's run ends at a quiescent point where World checks, for
// every pool, allocated == used + free and used == the objects the threads
// hold, then that every pool is empty (used == 0, allocated == 0) once the
// threads have exited, freed what they held and the pools are flushed. After
// each run this test also checks that every byte obtained from the system was
// given back (SystemBytesInUse() == 0) and no pool is left; at the end, that
// resident memory is back near where it was after the first minute's warm-up.
//
//   bazel run --config=asan //tests:soak_test_lockless -- --duration=10m
//   bazel run --config=tsan //tests:soak_test_locked -- --duration=10m
//
// Flags (the last of each wins, so `bazel run` arguments override the test's):
//   --duration=D    10s, 5m, 1h or plain seconds; default $POOLGUARD_SOAK_DURATION
//                   or 10s
//   --threads=N     threads per program (2..4, default 4)
//   --ops=N         ops per thread per program (default 20000; shorter
//                   programs mean more thread creations, whose bookkeeping
//                   in the ASan and TSan runtimes grows resident memory)
//   --seed=N        first program's seed (default 1)
//   --fail=P        probability that a request to the system fails (default 0.02)
//   --rss_slack_mb=M  allowed growth of resident memory (default 64)

#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuzz/free_running.h"
#include "fuzz/interpreter.h"
#include "fuzz/op_program.h"
#include "pool/failure_injection.h"
#include "pool/limits.h"
#include "pool/pool.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
// ASan keeps freed blocks in a quarantine of 256 MB by default before reusing
// them; over a soak that fills, and resident memory would measure ASan, not
// the pools. 32 MB keeps every released block poisoned for thousands of
// programs and lets resident memory settle. (ASAN_OPTIONS still overrides.)
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=32"; }
#endif
#endif

namespace poolguard::fuzz {
namespace {

// Seconds in "10s", "5m", "1h" or "42"; -1 if malformed.
double ParseDuration(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || value < 0) return -1;
  const std::string unit(end);
  if (unit.empty() || unit == "s") return value;
  if (unit == "m") return value * 60;
  if (unit == "h") return value * 3600;
  return -1;
}

// Resident memory in bytes, from /proc/self/statm.
size_t ResidentBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int fields = std::fscanf(statm, "%lu %lu", &size, &resident);
  std::fclose(statm);
  return fields == 2 ? resident * 4096 : 0;
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "soak: FAILED: %s\n", message.c_str());
  std::abort();
}

int Main(int argc, char** argv) {
  double duration = 10;
  if (const char* env = std::getenv("POOLGUARD_SOAK_DURATION")) duration = ParseDuration(env);
  size_t threads = 4;
  size_t ops = 20000;
  uint64_t seed = 1;
  double fail = 0.02;
  size_t rss_slack_mb = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&arg](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 ? arg.c_str() + n : nullptr;
    };
    if (const char* v = value("--duration=")) {
      duration = ParseDuration(v);
    } else if (const char* v = value("--threads=")) {
      threads = std::strtoul(v, nullptr, 10);
    } else if (const char* v = value("--ops=")) {
      ops = std::strtoul(v, nullptr, 10);
    } else if (const char* v = value("--seed=")) {
      seed = std::strtoull(v, nullptr, 10);
    } else if (const char* v = value("--fail=")) {
      fail = std::strtod(v, nullptr);
    } else if (const char* v = value("--rss_slack_mb=")) {
      rss_slack_mb = std::strtoul(v, nullptr, 10);
    } else {
      Fail("unknown argument " + arg);
    }
  }
  if (duration < 0) Fail("bad --duration (want 10s, 5m, 1h or seconds)");
  if (threads < 2 || threads > 4) Fail("--threads must be 2 to 4");

  std::printf(
      "soak: backend %s%s, %.0f s, %zu threads x %zu ops per program, "
      "failure probability %.3f, first seed %llu\n",
      std::string(BackendName()).c_str(), DebugModeEnabled() ? " (debug)" : "", duration, threads,
      ops, fail, static_cast<unsigned long long>(seed));
  std::fflush(stdout);

  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  // Resident memory is measured once the allocators (and ASan's quarantine,
  // TSan's shadow) have warmed up: after the first programs, at most a minute.
  const Clock::time_point warm =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(std::min(60.0, duration / 10)));
  size_t rss_start = 0;
  size_t rss_peak = 0;
  Clock::time_point next_report = start + std::chrono::seconds(30);
  const uint64_t injected_before = InjectedSystemAllocFailures();
  uint64_t programs = 0;
  do {
    RandomProgramOptions options;
    options.threads = threads;
    options.ops_per_thread = ops;
    // Failures come mostly from the probability above: only thread 0 also
    // draws "fail the next system allocation", which otherwise (one op kind
    // in eighteen, on every thread) would fail nearly every request. No
    // exit_thread or fork ops: at one op in eighteen they would make a
    // program thousands of OS threads and processes, whose bookkeeping in
    // the sanitizer runtimes, not the pools, would grow resident memory
    // (thread_exit_test, fork_test and the fuzzers cover both).
    constexpr uint32_t kSoakKinds =
        kAllKinds & ~KindBit(OpKind::kExitThread) & ~KindBit(OpKind::kFork);
    options.kinds_per_thread.assign(threads, kSoakKinds & ~KindBit(OpKind::kFailNextSystemAlloc));
    options.kinds_per_thread[0] = kSoakKinds;
    const Program program = RandomProgram(seed, options);
    RunConditions conditions;
    conditions.failures.probability = fail;
    conditions.failures.seed = seed;
    // Every third program runs under a tight process byte limit, so that
    // refusals, and the GcAll() they trigger, happen in the middle of
    // concurrent allocs, frees and flushes.
    if (seed % 3 == 0) conditions.byte_limit = 6144 + (seed % 7) * 1024;
    SetRunConditions(conditions);
    // Runs the program, joins its threads, checks every quiescent oracle.
    RunFreeRunning(program);
    ++programs;
    // Every object accounted for: all memory is back with the system.
    if (SystemBytesInUse() != 0) {
      Fail("after program " + std::to_string(seed) + ", " + std::to_string(SystemBytesInUse()) +
           " bytes are still held from the system:\n" + DumpPools());
    }
    const std::string pools = DumpPools(DumpFormat::kJson);
    if (pools.find("\"pools\":[]") == std::string::npos) {
      Fail("after program " + std::to_string(seed) + ", pools are left: " + pools);
    }
    const Clock::time_point now = Clock::now();
    const size_t rss = ResidentBytes();
    if (rss_start == 0 && now >= warm) rss_start = rss;
    if (rss > rss_peak) rss_peak = rss;
    if (now >= next_report) {
      std::printf("soak: %.0f s, %llu programs, %llu injected failures, resident %.1f MB\n",
                  std::chrono::duration<double>(now - start).count(),
                  static_cast<unsigned long long>(programs),
                  static_cast<unsigned long long>(InjectedSystemAllocFailures() - injected_before),
                  rss / 1048576.0);
      std::fflush(stdout);
      next_report += std::chrono::seconds(30);
    }
    ++seed;
  } while (Clock::now() < deadline);

  SetRunConditions(RunConditions{});
  malloc_trim(0);
  const size_t rss_end = ResidentBytes();
  if (rss_start == 0) rss_start = rss_end;
  std::printf(
      "soak: PASSED: %llu programs (%llu ops), %llu injected failures, "
      "%zu bytes held from the system at the end; resident %.1f MB after warm-up, "
      "%.1f MB peak, %.1f MB at the end\n",
      static_cast<unsigned long long>(programs),
      static_cast<unsigned long long>(programs * threads * ops),
      static_cast<unsigned long long>(InjectedSystemAllocFailures() - injected_before),
      SystemBytesInUse(), rss_start / 1048576.0, rss_peak / 1048576.0, rss_end / 1048576.0);
  if (rss_end > rss_start + rss_slack_mb * 1048576) {
    Fail("resident memory grew by more than " + std::to_string(rss_slack_mb) + " MB");
  }
  return 0;
}

}  // namespace
}  // namespace poolguard::fuzz

int main(int argc, char** argv) { return poolguard::fuzz::Main(argc, argv); }
