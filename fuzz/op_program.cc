#include "fuzz/op_program.h"

#include <limits.h>

#include <algorithm>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "pool/splitmix64.h"

namespace poolguard::fuzz {

std::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAlloc:
      return "alloc";
    case OpKind::kFree:
      return "free";
    case OpKind::kWriteStamp:
      return "write";
    case OpKind::kCheckStamp:
      return "check";
    case OpKind::kFlush:
      return "flush";
    case OpKind::kGcAll:
      return "gc_all";
    case OpKind::kCreatePool:
      return "create_pool";
    case OpKind::kDestroyPool:
      return "destroy_pool";
    case OpKind::kFailNextSystemAlloc:
      return "fail_next_system_alloc";
    case OpKind::kGive:
      return "give";
    case OpKind::kTake:
      return "take";
    case OpKind::kAllocBulk:
      return "alloc_n";
    case OpKind::kFreeBulk:
      return "free_n";
    case OpKind::kStats:
      return "stats";
    case OpKind::kReleaseCaches:
      return "release_caches";
    case OpKind::kRecyclePool:
      return "recycle_pool";
    case OpKind::kExitThread:
      return "exit_thread";
    case OpKind::kFork:
      return "fork";
    case OpKind::kDumpPools:
      return "dump_pools";
    case OpKind::kFailMembarrier:
      return "fail_membarrier";
    case OpKind::kLimitBytes:
      return "limit_bytes";
    case OpKind::kNumKinds:
      break;
  }
  return "?";
}

namespace {

// The kind of each head code (op_program.h); code 14 is process-wide.
constexpr uint8_t kProcessWideCode = 14;
constexpr OpKind kKindOfCode[16] = {
    OpKind::kAlloc,      OpKind::kFree,        OpKind::kWriteStamp,
    OpKind::kCheckStamp, OpKind::kFlush,       OpKind::kGcAll,
    OpKind::kCreatePool, OpKind::kDestroyPool, OpKind::kFailNextSystemAlloc,
    OpKind::kGive,       OpKind::kTake,        OpKind::kAllocBulk,
    OpKind::kFreeBulk,   OpKind::kExitThread,  OpKind::kStats,
    OpKind::kAlloc,
};
// Code 14's kinds, by arg % 8; with arg 255, fork. Fork costs milliseconds
// (copying a sanitized process's page tables), so random bytes seldom ask
// for one; the seeds that fork keep it in a corpus.
constexpr OpKind kProcessWideKinds[8] = {
    OpKind::kStats,     OpKind::kStats,         OpKind::kStats,         OpKind::kDumpPools,
    OpKind::kDumpPools, OpKind::kReleaseCaches, OpKind::kReleaseCaches, OpKind::kRecyclePool};
constexpr uint8_t kProcessWideChoices = 8;
constexpr uint8_t kForkArg = 255;
// Code 8 is fail_next_system_alloc, whose arg means nothing, but one arg in 8
// makes it fail_membarrier and another limit_bytes: runs with either are
// rare (each lasts until the run ends), and old inputs keep their meaning
// unless their fail_next arg happened to be 6 or 7 mod 8.
constexpr uint8_t kFailCode = 8;
constexpr uint8_t kFailMembarrierArg = 7;
constexpr uint8_t kLimitBytesArg = 6;

uint8_t CodeOf(OpKind kind) {
  if (IsProcessWideKind(kind)) return kProcessWideCode;
  if (kind == OpKind::kFailMembarrier || kind == OpKind::kLimitBytes) return kFailCode;
  for (uint8_t code = 0; code < 16; ++code) {
    if (kKindOfCode[code] == kind) return code;
  }
  return 0;
}

uint8_t ProcessWideIndex(OpKind kind) {
  for (uint8_t i = 0; i < kProcessWideChoices; ++i) {
    if (kProcessWideKinds[i] == kind) return i;
  }
  return 0;
}

}  // namespace

bool IsProcessWideKind(OpKind kind) {
  return kind == OpKind::kStats || kind == OpKind::kDumpPools || kind == OpKind::kReleaseCaches ||
         kind == OpKind::kRecyclePool || kind == OpKind::kFork;
}

size_t BulkCount(uint8_t code) {
  // Around the sizes that matter to a cache: its initial 64 and half of it,
  // one past them, doubled, and beyond twice the largest cache (1024) plus a
  // batch of it (512).
  static constexpr size_t kCounts[16] = {2,   7,   16,  33,  64,   65,   100,  129,
                                         200, 300, 513, 700, 1025, 1500, 2049, 2600};
  return kCounts[code % 16];
}

ExitOp DecodeExit(uint8_t arg) {
  const auto phase = static_cast<ExitPhase>(arg % 3);
  return ExitOp{phase, phase == ExitPhase::kReturn ? size_t{0} : size_t{(arg / 3) % 4u},
                phase == ExitPhase::kKeyDestructor && (arg / 12) % 2 == 1};
}

int KeyDestructorRoundsToWait(const ExitOp& exit) {
  if (!exit.in_last_round) return 0;
#if defined(ABSL_HAVE_THREAD_SANITIZER)
  return PTHREAD_DESTRUCTOR_ITERATIONS - 3;
#else
  return PTHREAD_DESTRUCTOR_ITERATIONS - 1;
#endif
}

bool KeyDestructorOpsInLastRound(const ExitOp& exit) {
  return KeyDestructorRoundsToWait(exit) == PTHREAD_DESTRUCTOR_ITERATIONS - 1;
}

Program DecodeProgram(absl::Span<const uint8_t> bytes, size_t* consumed) {
  Program program;
  size_t pos = 0;
  const size_t threads =
      Program::kMinThreads +
      (bytes.empty() ? 0 : bytes[pos++] % (Program::kMaxThreads - Program::kMinThreads + 1));
  program.threads.resize(threads);
  const size_t max_ops = threads * Program::kMaxOpsPerThread;
  size_t ops = 0;
  while (pos + 2 <= bytes.size() && ops < max_ops) {
    const uint8_t head = bytes[pos];
    const uint8_t arg = bytes[pos + 1];
    pos += 2;
    ++ops;
    const uint8_t code = head & 0x0f;
    Op op{kKindOfCode[code], arg};
    if (code == kProcessWideCode) {
      op = arg == kForkArg ? Op{OpKind::kFork, 0}
                           : Op{kProcessWideKinds[arg % kProcessWideChoices],
                                static_cast<uint8_t>(arg / kProcessWideChoices)};
    } else if (code == kFailCode && arg % 8 == kFailMembarrierArg) {
      op = Op{OpKind::kFailMembarrier, static_cast<uint8_t>(arg / 8 % 2)};
    } else if (code == kFailCode && arg % 8 == kLimitBytesArg) {
      op = Op{OpKind::kLimitBytes, static_cast<uint8_t>(arg / 8)};
    }
    std::vector<Op>& thread = program.threads[(head >> 4) % threads];
    if (thread.size() >= Program::kMaxOpsPerThread) continue;
    thread.push_back(op);
  }
  if (consumed != nullptr) *consumed = pos;
  return program;
}

std::vector<uint8_t> EncodeProgram(const Program& program) {
  std::vector<uint8_t> bytes;
  bytes.push_back(static_cast<uint8_t>(program.threads.size() - Program::kMinThreads));
  // Thread by thread: the decoder does not care about the order between
  // threads, only within one.
  for (size_t t = 0; t < program.threads.size(); ++t) {
    for (const Op& op : program.threads[t]) {
      const uint8_t code = CodeOf(op.kind);
      bytes.push_back(static_cast<uint8_t>((t << 4) | code));
      uint8_t arg = op.arg;
      if (op.kind == OpKind::kFork) {
        arg = kForkArg;
      } else if (code == kProcessWideCode) {
        // 31 * 8 + 7 would be the fork's 255: args of 30 and below only.
        arg = static_cast<uint8_t>((op.arg % 31) * kProcessWideChoices + ProcessWideIndex(op.kind));
      } else if (op.kind == OpKind::kFailMembarrier) {
        arg = static_cast<uint8_t>((op.arg % 2) * 8 + kFailMembarrierArg);
      } else if (op.kind == OpKind::kLimitBytes) {
        arg = static_cast<uint8_t>((op.arg % 32) * 8 + kLimitBytesArg);
      }
      bytes.push_back(arg);
    }
  }
  return bytes;
}

size_t MaxObjectsAllocated(const Program& program) {
  size_t objects = 0;
  for (const std::vector<Op>& ops : program.threads) {
    for (const Op& op : ops) {
      // alloc_n's arg / 16 is its count code (interpreter.cc).
      if (op.kind == OpKind::kAllocBulk) objects += BulkCount(op.arg / 16);
      if (op.kind == OpKind::kAlloc) ++objects;
    }
  }
  return objects;
}

Program RandomProgram(uint64_t seed, const RandomProgramOptions& options) {
  uint64_t state = seed;
  auto next = [&state] { return internal::SplitMix64(state); };
  Program program;
  program.threads.resize(options.threads);
  for (size_t t = 0; t < options.threads; ++t) {
    const uint32_t mask = t < options.kinds_per_thread.size()
                              ? options.kinds_per_thread[t] & kAllKinds
                              : kDefaultRandomKinds;
    std::vector<OpKind> kinds;
    for (int k = 0; k < static_cast<int>(OpKind::kNumKinds); ++k) {
      if (mask & (uint32_t{1} << k)) kinds.push_back(static_cast<OpKind>(k));
    }
    if (kinds.empty()) continue;
    for (size_t i = 0; i < options.ops_per_thread; ++i) {
      const uint64_t r = next();
      const OpKind kind = kinds[r % kinds.size()];
      // Process-wide ops carry up to 30 (the format's limit; fork none), so
      // that every generated program encodes.
      uint8_t arg = static_cast<uint8_t>(r >> 32);
      if (kind == OpKind::kFork || kind == OpKind::kFailMembarrier) arg = 0;
      // (An arg of 6 or 7 mod 8 would encode limit_bytes or fail_membarrier.)
      if (kind == OpKind::kFailNextSystemAlloc && arg % 8 >= kLimitBytesArg) arg -= 2;
      if (kind == OpKind::kLimitBytes) arg %= 32;
      if (IsProcessWideKind(kind) && kind != OpKind::kFork) arg %= 31;
      program.threads[t].push_back(Op{kind, arg});
    }
  }
  return program;
}

std::string ProgramToString(const Program& program, size_t max_ops_per_thread) {
  std::string out;
  for (size_t t = 0; t < program.threads.size(); ++t) {
    const std::vector<Op>& ops = program.threads[t];
    absl::StrAppend(&out, "thread ", t, ":");
    // Long (generated) programs are listed in part; they replay from their seed.
    const size_t shown = std::min(ops.size(), max_ops_per_thread);
    for (size_t i = 0; i < shown; ++i) {
      absl::StrAppend(&out, " ", OpKindName(ops[i].kind), "(", ops[i].arg, ")");
    }
    if (shown < ops.size()) absl::StrAppend(&out, " ... (", ops.size(), " ops)");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace poolguard::fuzz
