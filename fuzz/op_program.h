// The op language: what fuzzers, stress tests and the soak test run.
//
// A program is 2 to 4 threads, each a bounded sequence of ops on a small set
// of pools. Bytes decode into a program with DecodeProgram(); every byte
// string decodes to a valid program (none is rejected), so a fuzzer's
// mutations are never wasted and a crash input always replays.

#ifndef POOLGUARD_FUZZ_OP_PROGRAM_H_
#define POOLGUARD_FUZZ_OP_PROGRAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace poolguard::fuzz {

enum class OpKind : uint8_t {
  kAlloc,                // alloc from pool `arg`; the object is stamped and held
  kFree,                 // free held object `arg` (after checking its stamp)
  kWriteStamp,           // re-stamp held object `arg` with a new serial
  kCheckStamp,           // check the stamp of held object `arg`
  kFlush,                // flush pool `arg`
  kGcAll,                // GcAll()
  kCreatePool,           // create private pool `arg` (if absent), shape from `arg`
  kDestroyPool,          // destroy private pool `arg` if it is empty
  kFailNextSystemAlloc,  // make the next request to the system fail
  kNumKinds,
};

std::string_view OpKindName(OpKind kind);

struct Op {
  OpKind kind;
  // Pool index or held-object index, taken modulo what exists when the op
  // runs, so that every value is valid.
  uint8_t arg;
};

struct Program {
  static constexpr size_t kMinThreads = 2;
  static constexpr size_t kMaxThreads = 4;
  static constexpr size_t kMaxOpsPerThread = 48;

  // threads[t] is the op sequence of thread t; 2 to 4 of them.
  std::vector<std::vector<Op>> threads;
};

// Decodes `bytes` into a program: the first byte picks the thread count, then
// each pair of bytes is one op (thread, kind in the first; arg in the second).
// Ops beyond a thread's limit are dropped. Returns the bytes consumed, so that
// callers can decode a schedule from the rest.
Program DecodeProgram(absl::Span<const uint8_t> bytes, size_t* consumed = nullptr);

// A program drawn from a seed, for stress and soak tests: `threads` threads of
// `ops_per_thread` ops each (any length; the per-thread bound applies only to
// decoded programs). Thread t draws only the kinds set in kinds_of_thread(t),
// a bit mask over OpKind (bit k = OpKind k).
struct RandomProgramOptions {
  size_t threads = 4;
  size_t ops_per_thread = 1000;
  // By default every thread draws every kind.
  std::vector<uint32_t> kinds_per_thread;  // empty: all kinds for all threads
};
Program RandomProgram(uint64_t seed, const RandomProgramOptions& options);

// Bit mask helpers for RandomProgramOptions::kinds_per_thread.
constexpr uint32_t KindBit(OpKind kind) { return uint32_t{1} << static_cast<int>(kind); }
constexpr uint32_t kAllKinds = (uint32_t{1} << static_cast<int>(OpKind::kNumKinds)) - 1;

// A human-readable listing, a line per thread, for crash reports; at most
// `max_ops_per_thread` ops of each thread are shown.
std::string ProgramToString(const Program& program,
                            size_t max_ops_per_thread = Program::kMaxOpsPerThread);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_OP_PROGRAM_H_
