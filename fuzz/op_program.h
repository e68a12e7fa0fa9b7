// The op language: what fuzzers, stress tests and the soak test run.
//
// A program is 2 to 4 threads, each a bounded sequence of ops on a set of
// pools: shared ones every thread uses, and private ones each thread creates
// and destroys. Bytes decode into a program with DecodeProgram(); every byte
// string decodes to a valid program (none is rejected), so a fuzzer's
// mutations are never wasted and a crash input always replays.
//
// What the ops reach, beyond alloc and free: objects handed from thread to
// thread through mailboxes (and freed on the other thread); bulk allocs and
// frees of up to 2600 objects, which fill thread caches past their largest
// size and empty them; pool shapes from 1-byte objects to 64 KiB, alignments
// up to 4096, min_free and max_objects variants, up to 8 private pools per
// thread created and destroyed (so a program has over 20 live pools, and a
// destroyed pool's slots are reused); a thread that ends mid-program, its
// last ops run in its thread_local or pthread key destructors, and a new
// thread that takes its place (on the dead one's stack and TLS); fork while
// other threads are mid-operation, the child using its inherited pools.
//
// Format, version 2 (fuzz/make_seed_corpus.py writes it): two bytes per op,
// as in version 1.
//   byte 0:        thread count, 2 + byte % 3
//   then per op:   head = (thread << 4) | code, then arg. The code picks the
//                  kind (kKindOfCode in op_program.cc): codes 0-8 are the
//                  kinds of version 1, with the same arguments; 9-13 give,
//                  take, alloc_n, free_n, exit_thread; 14 a process-wide
//                  call: fork if arg is 255, else chosen by arg % 8 (0-2
//                  stats, 3-4 dump_pools, 5-6 release_caches, 7
//                  recycle_pool; that op's arg is arg / 8); 15 alloc again (the commonest op gets
//                  two codes). Code 8 with arg % 8 == 7 is fail_membarrier
//                  (its arg is arg / 8 % 2), with arg % 8 == 6 limit_bytes
//                  (its arg is arg / 8); other
//                  args: fail_next_system_alloc, as in version 1.
// Several fields can share the arg byte (create_pool: slot and shape;
// give: held object and mailbox; alloc_n: pool and count), so no op needs a
// third byte. The expensive ops (fork, and long bulk ops) are a small share
// of what random bytes decode to, which keeps the fuzzers' executions fast.
// Version 1 inputs decode to the same op kinds with the same args; what the
// args pick (pool shapes, the set of pools) is version 2's.

#ifndef POOLGUARD_FUZZ_OP_PROGRAM_H_
#define POOLGUARD_FUZZ_OP_PROGRAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace poolguard::fuzz {

// The kinds, in the order of their codes (see the format above; the
// process-wide ones share code 14).
enum class OpKind : uint8_t {
  kAlloc,                // alloc from pool `arg`; the object is stamped and held
  kFree,                 // free held object `arg` (after checking its stamp)
  kWriteStamp,           // re-stamp held object `arg` with a new serial
  kCheckStamp,           // check the stamp of held object `arg`
  kFlush,                // flush pool `arg`
  kGcAll,                // GcAll()
  kCreatePool,           // create private pool `arg` % 8, shape `arg` / 8 (of 32)
  kDestroyPool,          // destroy private pool `arg` if nothing of it is held
  kFailNextSystemAlloc,  // make the next request to the system fail
  kGive,                 // put held object `arg` / 4 (a shared pool's) in mailbox `arg` % 4
  kTake,                 // take the object in mailbox `arg`, if any, and hold it
  kAllocBulk,            // alloc BulkCount(arg / 16) objects from pool `arg` % 16
  kFreeBulk,             // free BulkCount(arg) held objects, the newest first
  kExitThread,           // end this thread (how: `arg`); a new one runs the rest
  kStats,                // Stats() of pool `arg` while others run (sane, never torn)
  kDumpPools,            // DumpPools() while others run (JSON if `arg` is odd)
  kReleaseCaches,        // ReleaseThreadCaches()
  kFork,                 // fork(); the child checks and uses its pools, and exits
  kRecyclePool,          // destroy shared pool `arg` and create it again, if no thread
                         // holds or is using any of its objects (others may be mid-call
                         // on other pools, binding caches, exiting or forking)
  kFailMembarrier,       // arg 0: membarrier() fails from its next call until the run ends
                         // or an arg 1 op (tlcache's drains then switch the process to
                         // fenced windows); arg 1: it works again, and tlcache goes back to
                         // unfenced windows while the other threads bind and drain
  kLimitBytes,           // until the run ends, the pools may hold from the system only what
                         // they hold now plus `arg` (0-31) * 4 KiB (pool/limits.h): refusals
                         // that last, as a server at its memory limit sees them
  kNumKinds,
};

std::string_view OpKindName(OpKind kind);

// The process-wide kinds share code 14, so their arg is 0-30 (fork: none).
bool IsProcessWideKind(OpKind kind);

struct Op {
  OpKind kind;
  // Indexes (pools, held objects, mailboxes) are taken modulo what exists
  // when the op runs, so that every value is valid.
  uint8_t arg;
};

// How many objects alloc_n/free_n move: a 4-bit code picks one of 2 .. 2600
// (the interpreter also caps an op at 2 MiB of objects).
size_t BulkCount(uint8_t code);

// kExitThread's `arg`: how the thread ends, and how many of the ops after
// the exit run in its destructors (the rest run on a new thread).
enum class ExitPhase : uint8_t {
  kReturn,                 // the thread function returns; nothing after it
  kThreadLocalDestructor,  // the next ops run in a C++ thread_local destructor
  kKeyDestructor,          // the next ops run in a pthread key destructor
};
struct ExitOp {
  ExitPhase phase;
  size_t ops_in_destructor;  // 0 to 3 (0 for kReturn)
  // kKeyDestructor only: the destructor sets its key again until glibc's
  // last round (PTHREAD_DESTRUCTOR_ITERATIONS), so the ops run after every
  // other key destructor of the thread, the backends' exit hooks included,
  // as a library's re-arming destructor would make them.
  bool in_last_round = false;
};
ExitOp DecodeExit(uint8_t arg);

// How many rounds of key destructors an exit's destructor passes (setting
// its key again each time) before its ops run: 0, or for in_last_round
// enough to reach glibc's last round (PTHREAD_DESTRUCTOR_ITERATIONS). Under
// ThreadSanitizer two fewer: its own thread finalizer is a key destructor
// that takes the last round, and any instrumented code after it crashes
// TSan, an exit hook the ops arm (which runs a round after them) included.
int KeyDestructorRoundsToWait(const ExitOp& exit);
// Whether the ops then run in glibc's last round (never under TSan).
bool KeyDestructorOpsInLastRound(const ExitOp& exit);

struct Program {
  static constexpr size_t kMinThreads = 2;
  static constexpr size_t kMaxThreads = 4;
  static constexpr size_t kMaxOpsPerThread = 64;

  // threads[t] is the op sequence of thread t; 2 to 4 of them.
  std::vector<std::vector<Op>> threads;
};

// Decodes `bytes` into a program (the format above). Ops beyond a thread's
// limit are dropped. Returns the bytes consumed, so that callers can decode
// a schedule from the rest.
Program DecodeProgram(absl::Span<const uint8_t> bytes, size_t* consumed = nullptr);

// The inverse, for seed corpora and tests: DecodeProgram(EncodeProgram(p))
// is p for every p whose process-wide ops have args below 31, whose forks
// ops have 0, whose fail_membarrier ops have 0 or 1, whose limit_bytes ops
// have args below 32,
// and whose fail_next_system_alloc ops have no arg of 6 or 7 mod 8
// (RandomProgram's do).
std::vector<uint8_t> EncodeProgram(const Program& program);

// The most objects `program` may allocate: one per alloc op, BulkCount() per
// alloc_n (a bound for budgets that scale with a program's work).
size_t MaxObjectsAllocated(const Program& program);

// A program drawn from a seed, for stress and soak tests: `threads` threads of
// `ops_per_thread` ops each (any length; the per-thread bound applies only to
// decoded programs). Thread t draws only the kinds set in kinds_per_thread[t],
// a bit mask over OpKind (bit k = OpKind k); by default every thread draws
// kDefaultRandomKinds.
struct RandomProgramOptions {
  size_t threads = 4;
  size_t ops_per_thread = 1000;
  std::vector<uint32_t> kinds_per_thread;  // empty: kDefaultRandomKinds for all
};
Program RandomProgram(uint64_t seed, const RandomProgramOptions& options);

// Bit mask helpers for RandomProgramOptions::kinds_per_thread.
constexpr uint32_t KindBit(OpKind kind) { return uint32_t{1} << static_cast<int>(kind); }
constexpr uint32_t kAllKinds = (uint32_t{1} << static_cast<int>(OpKind::kNumKinds)) - 1;
// Every kind but fork (a fork costs milliseconds) and limit_bytes (its limit
// lasts until the run ends, which would starve the rest of a long program):
// long random programs ask for them on purpose.
constexpr uint32_t kDefaultRandomKinds =
    kAllKinds & ~KindBit(OpKind::kFork) & ~KindBit(OpKind::kLimitBytes);

// A human-readable listing, a line per thread, for crash reports; at most
// `max_ops_per_thread` ops of each thread are shown.
std::string ProgramToString(const Program& program,
                            size_t max_ops_per_thread = Program::kMaxOpsPerThread);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_OP_PROGRAM_H_
