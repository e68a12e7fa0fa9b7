// A schedule for the scheduled executor (fuzz/scheduled.h), decoded from
// fuzzer bytes. Independent of any backend.

#ifndef POOLGUARD_FUZZ_SCHEDULE_H_
#define POOLGUARD_FUZZ_SCHEDULE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "fuzz/op_program.h"

namespace poolguard::fuzz {

struct Schedule {
  static constexpr size_t kMaxChangePoints = 3;
  // Bytes DecodeSchedule() reads; the program follows them in a fuzz input:
  // one priority per thread, a mode byte, then two bytes per change point:
  // {thread (bits 0-1) and point kind (bits 2-7), occurrence}. The mode
  // byte: below 128, its value % 4 is how many change points follow; from
  // 128 on, random preemption (below) at odds 2 << ((byte >> 2) % 8), seeded
  // by the six change-point bytes. In either mode, bit 6 of the mode byte
  // (kStoreBuffersBit) turns on store buffers (below).
  static constexpr size_t kEncodedSize = Program::kMaxThreads + 1 + kMaxChangePoints * 2;

  // Kinds of schedule points a change point can name: the pool's own
  // (poolguard::internal::SchedPoint, 0 to kPoolPointKinds - 1), the point
  // the executor places before each op, and "any point".
  static constexpr int kPoolPointKinds = 11;
  static constexpr int kOpBoundary = kPoolPointKinds;
  static constexpr int kAnyPoint = kPoolPointKinds + 1;
  static constexpr int kPointKinds = kPoolPointKinds + 2;

  struct ChangePoint {
    size_t thread;  // modulo the program's thread count
    int kind;       // a SchedPoint value, kOpBoundary or kAnyPoint
    // The thread drops below all others when it reaches its occurrence-th
    // point of that kind (counting from 1). Naming the kind ("its 2nd CAS")
    // keeps a change point on the same step when a mutation changes other
    // ops, and makes the steps that matter far likelier to be hit than a
    // plain step number would.
    uint32_t occurrence;
  };

  // PCT priorities: higher runs first; ties go to the lower thread index.
  std::array<uint8_t, Program::kMaxThreads> priorities{};
  std::vector<ChangePoint> change_points;
  // Random preemption (PCT with change points drawn at run time, as
  // shuttle's PCT scheduler draws them): when non-zero, each schedule point
  // drops the running thread below all others with probability
  // 1 / random_preemption_odds, from a generator seeded with random_seed.
  // Deterministic: the same input takes the same interleaving. It reaches
  // preemptions deep into long runs (the 65th free of a bulk op) that no
  // one-byte occurrence can name, and several at once.
  uint32_t random_preemption_odds = 0;
  uint64_t random_seed = 0;
  // Store buffers (fuzz/store_buffers.h, pool/atomic.h): x86's total store
  // order instead of sequential consistency. A thread's plain stores stay
  // invisible to the other threads until it drains: at a locked instruction,
  // a seq_cst store or fence, a process-wide barrier, when it resumes after
  // a switch or waits in a spin loop, before it releases memory to the
  // system, and at the end of each op. Shows the
  // bugs of a missing fence or barrier (a Dekker handshake's store-buffering
  // window) that no interleaving can.
  bool store_buffers = false;
  static constexpr uint8_t kStoreBuffersBit = 0x40;
  // More schedule points than this in one run is a hang (livelock), plus
  // kStepsPerObject for every object the program may allocate (see
  // RunScheduled()): what a run may take grows with what it allocates.
  uint32_t step_budget = 200000;
  static constexpr uint32_t kStepsPerObject = 100;
};

// Decodes the first kEncodedSize bytes (missing bytes read as 0). Every input
// decodes to a valid schedule.
Schedule DecodeSchedule(absl::Span<const uint8_t> bytes);

// Changes the schedule that `header` (the first kEncodedSize bytes of an
// input) encodes, a small step chosen by `seed`: a new random-preemption seed
// or odds, a change point's occurrence nudged or its thread or kind changed,
// one change point more or less, a priority, the other mode, or store
// buffers on or off. The program
// after the header is untouched, so a fuzzer's corpus entry gets tried under
// other interleavings, which byte-level mutations, spread over the whole
// input, seldom do. Same seed, same change.
void MutateScheduleHeader(absl::Span<uint8_t> header, uint64_t seed);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_SCHEDULE_H_
