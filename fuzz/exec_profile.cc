#include "fuzz/exec_profile.h"

#include <time.h>

#include <cstdio>
#include <cstdlib>

namespace poolguard::fuzz {
namespace exec_profile_internal {

std::atomic<bool> enabled{false};

namespace {

const char* const kPhaseNames[] = {"decode", "threads", "schedule", "handoff",
                                   "ops",    "oracles", "other"};
static_assert(sizeof(kPhaseNames) / sizeof(kPhaseNames[0]) ==
              static_cast<size_t>(ExecPhase::kPhases));

// Totals in ns, and counts. relaxed: summed at exit, after every thread of
// every run was joined.
std::atomic<uint64_t> totals[static_cast<int>(ExecPhase::kPhases)];
std::atomic<uint64_t> execs{0};
std::atomic<uint64_t> input_ns{0};
std::atomic<uint64_t> hand_offs{0};
std::atomic<uint64_t> hand_off_stamp{0};
// Time in kOps per op kind, how many ops of each kind ran, and their names.
std::atomic<uint64_t> op_totals[kMaxOpKinds];
std::atomic<uint64_t> op_counts[kMaxOpKinds];
std::atomic<const char*> op_names[kMaxOpKinds];
const char* path = nullptr;

struct ThreadClock {
  ExecPhase phase = ExecPhase::kOther;
  ExecPhase resume_phase = ExecPhase::kOther;  // across a hand-off
  uint64_t since = 0;                          // 0: stopped
  int op = -1;                                 // the op kind kOps time goes to
};
thread_local ThreadClock clock_of_thread;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void Add(ExecPhase phase, uint64_t ns) {
  totals[static_cast<int>(phase)].fetch_add(ns, std::memory_order_relaxed);
}

// Charges `ns` to `clock`'s phase, and to its op kind if it is in kOps.
void AddFor(const ThreadClock& clock, uint64_t ns) {
  Add(clock.phase, ns);
  if (clock.phase == ExecPhase::kOps && clock.op >= 0) {
    op_totals[clock.op].fetch_add(ns, std::memory_order_relaxed);
  }
}

void WriteAtExit() {
  FILE* f = std::fopen(path, "w");
  if (f == nullptr) {
    std::fprintf(stderr, "exec_profile: cannot write %s\n", path);
    return;
  }
  std::fprintf(f, "{\"execs\": %llu, \"input_ns\": %llu, \"hand_offs\": %llu, \"ns\": {",
               static_cast<unsigned long long>(execs.load()),
               static_cast<unsigned long long>(input_ns.load()),
               static_cast<unsigned long long>(hand_offs.load()));
  for (int i = 0; i < static_cast<int>(ExecPhase::kPhases); ++i) {
    std::fprintf(f, "%s\"%s\": %llu", i == 0 ? "" : ", ", kPhaseNames[i],
                 static_cast<unsigned long long>(totals[i].load()));
  }
  // {"<op kind>": [ns, count], ...}
  std::fprintf(f, "}, \"ops\": {");
  bool first = true;
  for (int i = 0; i < kMaxOpKinds; ++i) {
    const char* name = op_names[i].load();
    if (name == nullptr) continue;
    std::fprintf(f, "%s\"%s\": [%llu, %llu]", first ? "" : ", ", name,
                 static_cast<unsigned long long>(op_totals[i].load()),
                 static_cast<unsigned long long>(op_counts[i].load()));
    first = false;
  }
  std::fprintf(f, "}}\n");
  std::fclose(f);
}

}  // namespace

void Switch(ExecPhase phase) {
  ThreadClock& clock = clock_of_thread;
  const uint64_t now = NowNs();
  if (clock.since != 0) AddFor(clock, now - clock.since);
  clock.phase = phase;
  clock.since = now;
}

void SwitchToOp(int kind, const char* name) {
  Switch(ExecPhase::kOps);
  ThreadClock& clock = clock_of_thread;
  clock.op = kind >= 0 && kind < kMaxOpKinds ? kind : -1;
  if (clock.op < 0) return;
  op_counts[clock.op].fetch_add(1, std::memory_order_relaxed);
  if (op_names[clock.op].load(std::memory_order_relaxed) == nullptr) {
    op_names[clock.op].store(name, std::memory_order_relaxed);
  }
}

ExecPhase Current() { return clock_of_thread.phase; }

}  // namespace exec_profile_internal

using namespace exec_profile_internal;  // NOLINT: this file's own internals

bool ExecProfileEnabled() {
  static const bool on = [] {
    path = std::getenv("POOLGUARD_EXEC_PROFILE");
    if (path == nullptr || *path == '\0') return false;
    std::atexit(&WriteAtExit);
    enabled.store(true, std::memory_order_relaxed);
    return true;
  }();
  return on;
}

void StopClock() {
  if (!enabled.load(std::memory_order_relaxed)) return;
  Switch(clock_of_thread.phase);
  clock_of_thread.since = 0;
}

void HandOffStart() {
  if (!enabled.load(std::memory_order_relaxed)) return;
  ThreadClock& clock = clock_of_thread;
  clock.resume_phase = clock.phase;
  Switch(ExecPhase::kHandOff);
  clock.since = 0;
  hand_off_stamp.store(NowNs(), std::memory_order_relaxed);
  hand_offs.fetch_add(1, std::memory_order_relaxed);
}

void HandOffEnd() {
  if (!enabled.load(std::memory_order_relaxed)) return;
  // The hand-off's own release/acquire orders the stamp before this load.
  const uint64_t now = NowNs();
  Add(ExecPhase::kHandOff, now - hand_off_stamp.load(std::memory_order_relaxed));
  ThreadClock& clock = clock_of_thread;
  clock.phase = clock.resume_phase;
  clock.since = now;
}

void CountExec(uint64_t ns) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  execs.fetch_add(1, std::memory_order_relaxed);
  input_ns.fetch_add(ns, std::memory_order_relaxed);
}

uint64_t ExecProfileNowNs() { return NowNs(); }

}  // namespace poolguard::fuzz
