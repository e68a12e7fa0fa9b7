// The fuzz target: bytes -> op program (and, in scheduled mode, a schedule)
// -> run against the pool API with every oracle on. One source, two targets:
//   scheduled_fuzzer     PCT schedule from the input, replays exactly (ASan)
//   free_running_fuzzer  real parallel threads (TSan)
// Built per backend; see fuzz/BUILD and fuzz/fuzzers.bzl.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "fuzz/exec_profile.h"
#include "fuzz/op_program.h"

#if defined(POOLGUARD_FREE_RUNNING_FUZZER)
#include "fuzz/free_running.h"
#else
#include "fuzz/scheduled.h"
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
// Built into TSan fuzz binaries (TSAN_OPTIONS still overrides):
// - halt_on_error=1: the first report ends the run, as every other oracle does.
// - report_signal_unsafe=0: when an oracle aborts, libFuzzer's deadly-signal
//   handler writes the crash input with fopen/malloc inside the signal
//   handler. TSan reports that as "signal-unsafe call inside of a signal" in
//   libFuzzer's own code, and the report, made from inside the handler, left
//   the process hanging instead of exiting. Nothing of poolguard's runs in a
//   signal handler, so this check has nothing else to find here.
// Not instrumented: TSan calls it before its runtime is initialized.
extern "C" __attribute__((no_sanitize("thread"))) const char* __tsan_default_options() {
  return "halt_on_error=1:report_signal_unsafe=0";
}

// The one TSan suppression, built into the fuzz binaries (the targets run
// instrumented code on several threads). libFuzzer's SanitizerCoverage
// counters (the 8-bit inline counters in the section __sancov_cntrs) are
// plain, unsynchronized increments by design; TSan reports those increments
// as races on the global '__sancov_cntrs'. They are libFuzzer's bookkeeping,
// not code under test, and TSan matches this pattern against the racing
// global's name only, so races in poolguard or its harness are still
// reported.
extern "C" __attribute__((no_sanitize("thread"))) const char* __tsan_default_suppressions() {
  return "race:__sancov_cntrs\n";
}
#endif
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
// Built into ASan fuzz binaries (ASAN_OPTIONS still overrides):
// quarantine_size_mb=32 instead of 256. Freed blocks wait in the quarantine
// (poisoned) before ASan reuses them; a run's use-after-free is of a block it
// freed itself moments before, far fewer than 32 MB of frees earlier. A
// smaller quarantine keeps the process small, and a fork op's cost (copying
// the page tables, then faulting every page the parent writes afterwards)
// grows with the process's resident memory.
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=32"; }

// UBSan (in the same builds, --config=asan) prints no stack by default: a
// report, and the campaign runner's triage, which folds reports by their top
// frames (tools/triage.py), would have nothing but the message.
// UBSAN_OPTIONS still overrides.
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1"; }
#endif
#endif

#if !defined(POOLGUARD_FREE_RUNNING_FUZZER)
// libFuzzer's own byte-level mutations (weak: the replay engine has none,
// and never calls the mutator below).
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size)
    __attribute__((weak));

// Half of the mutations change only the schedule header, a structured step
// (MutateScheduleHeader()): the same program under another interleaving. A
// bug of the project's kind needs the right program and the right
// interleaving both; libFuzzer's mutations land on the 11 header bytes in
// proportion to their share of the input, a few in a hundred.
//
// A custom mutator turns off libFuzzer's length control (which grows the
// inputs it makes a little at a time, so that the first ones are short and
// fast): the byte-level half grows an input by at most kGrowth bytes, and
// never past the longest input that still means something (a header and 64
// ops on each of 4 threads).
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  using poolguard::fuzz::Program;
  using poolguard::fuzz::Schedule;
  constexpr size_t kHeader = Schedule::kEncodedSize;
  constexpr size_t kLongest = kHeader + 1 + Program::kMaxThreads * Program::kMaxOpsPerThread * 2;
  constexpr size_t kGrowth = 16;
  if (size >= kHeader && seed % 2 == 0) {
    poolguard::fuzz::MutateScheduleHeader(absl::Span<uint8_t>(data, kHeader), seed / 2);
    return size;
  }
  if (LLVMFuzzerMutate == nullptr) return size;
  return LLVMFuzzerMutate(data, size, std::min({max_size, kLongest, size + kGrowth}));
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using poolguard::fuzz::ChargeTo;
  using poolguard::fuzz::ExecPhase;
  const bool profile = poolguard::fuzz::ExecProfileEnabled();
  const uint64_t start = profile ? poolguard::fuzz::ExecProfileNowNs() : 0;
  ChargeTo(ExecPhase::kDecode);
  const absl::Span<const uint8_t> input(data, size);
#if defined(POOLGUARD_FREE_RUNNING_FUZZER)
  const poolguard::fuzz::Program program = poolguard::fuzz::DecodeProgram(input);
  // Free-running threads overlap: the run is one phase, not split.
  ChargeTo(ExecPhase::kOps);
  poolguard::fuzz::RunFreeRunning(program);
#else
  // The schedule comes first: a fixed-size header, then the program.
  const poolguard::fuzz::Schedule schedule = poolguard::fuzz::DecodeSchedule(input);
  const size_t header = std::min(size, poolguard::fuzz::Schedule::kEncodedSize);
  const poolguard::fuzz::Program program = poolguard::fuzz::DecodeProgram(input.subspan(header));
  ChargeTo(ExecPhase::kOther);
  poolguard::fuzz::RunScheduled(program, schedule);
#endif
  poolguard::fuzz::StopClock();
  if (profile) poolguard::fuzz::CountExec(poolguard::fuzz::ExecProfileNowNs() - start);
  return 0;
}
