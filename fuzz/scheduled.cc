#include "fuzz/scheduled.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fuzz/interpreter.h"
#include "pool/sched_point.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POOLGUARD_TSAN 1
#endif
#endif

#if defined(POOLGUARD_TSAN)
// From the TSan runtime: between Begin and End, TSan records no
// happens-before edges for this thread's synchronization.
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
#endif

namespace poolguard::fuzz {
namespace {

constexpr int kNone = -1;

// Hides the scheduler's own hand-off from TSan (no-op elsewhere).
// POOLGUARD_TSAN_SEE_HANDOFFS=1 in the environment turns the hiding off: the
// control experiment of tools/check_tsan_handoffs.sh, which shows that TSan
// then misses the races between serialized threads.
class HiddenFromTsan {
 public:
  HiddenFromTsan() {
#if defined(POOLGUARD_TSAN)
    if (Enabled()) AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
#endif
  }
  ~HiddenFromTsan() {
#if defined(POOLGUARD_TSAN)
    if (Enabled()) AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
#endif
  }

 private:
  static bool Enabled() {
    static const bool enabled = [] {
      const char* see = std::getenv("POOLGUARD_TSAN_SEE_HANDOFFS");
      return see == nullptr || std::string_view(see) != "1";
    }();
    return enabled;
  }
};

// All mutable state is atomic: the hand-off is hidden from TSan, so plain
// fields shared by the serialized threads would be reported as races of the
// scheduler itself. Threads run one at a time, so relaxed order suffices for
// everything but `current_`, whose acquire/release orders the hand-off.
class Scheduler {
 public:
  Scheduler(const Schedule& schedule, World& world)
      : schedule_(schedule), world_(world), threads_(world.num_threads()) {
    for (size_t t = 0; t < threads_; ++t) {
      priority_[t].store(schedule.priorities[t] + 1, std::memory_order_relaxed);
    }
    current_.store(PickNext(), std::memory_order_relaxed);
  }

  // Runs on thread `me`: waits for its first turn, runs its ops, leaves.
  void RunThread(size_t me) {
    tls_scheduler_ = this;
    tls_me_ = static_cast<int>(me);
    WaitForTurn(me);
    const size_t ops = world_.num_ops(me);
    for (size_t i = 0; i < ops; ++i) {
      // Between ops: a schedule point, and a quiescent point if no other
      // thread is inside an op.
      Step(me, Schedule::kOpBoundary);
      if (in_op_.load(std::memory_order_relaxed) == 0) CheckQuiescentUnscheduled(me);
      in_op_.fetch_add(1, std::memory_order_relaxed);
      world_.RunOp(me, i);
      in_op_.fetch_sub(1, std::memory_order_relaxed);
    }
    Step(me, Schedule::kOpBoundary);
    in_op_.fetch_add(1, std::memory_order_relaxed);
    world_.FinishThread(me);
    // The thread's caches go back now, while the scheduler controls it: its
    // real exit, after the scheduler let go, then has nothing to do (no lock
    // taken by a thread no scheduler runs, which a scheduled thread could
    // wait for and be called hung).
    ReleaseThreadCaches();
    in_op_.fetch_sub(1, std::memory_order_relaxed);
    // acq_rel, and visible to TSan (not a hidden hand-off): like a join, it
    // orders every finished thread's ops before the final checks, which read
    // other threads' pools. Nothing runs concurrently with those checks.
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The last thread runs the final checks (flush every pool, expect
      // zero) still under the scheduler: if they wait on something no thread
      // will ever release (a leaked lock or claim), the hang oracle fires
      // instead of the process spinning forever.
      world_.FinishRun();
    }
    finished_[me].store(true, std::memory_order_relaxed);
    ClearWaiting();
    const int next = PickNext();
    tls_scheduler_ = nullptr;
    tls_me_ = kNone;
    HiddenFromTsan hidden;
    // release: the next thread sees everything this one did (the hand-off's
    // edge is hidden from TSan, not from the hardware).
    current_.store(next, std::memory_order_release);
  }

  static void Hook(poolguard::internal::SchedPoint point) {
    static_assert(poolguard::internal::kSchedPointKinds == Schedule::kPoolPointKinds,
                  "Schedule::kPoolPointKinds must count the SchedPoint kinds");
    Scheduler* scheduler = tls_scheduler_;
    if (scheduler == nullptr) return;  // Not a controlled thread.
    scheduler->Step(static_cast<size_t>(tls_me_), static_cast<int>(point));
  }

 private:
  // The oracle's own calls into the pools (Stats() takes the locked backend's
  // lock) pass schedule points; they must neither switch threads in the
  // middle of the check nor count as steps of the schedule.
  void CheckQuiescentUnscheduled(size_t me) {
    tls_scheduler_ = nullptr;
    world_.CheckQuiescent(me);
    tls_scheduler_ = this;
  }

  // One schedule point of thread `me`: count it, apply a change point, mark a
  // waiting thread, and hand over if another thread should run.
  void Step(size_t me, int kind) {
    const bool spin = kind == static_cast<int>(poolguard::internal::SchedPoint::kSpin);
    const uint32_t step = step_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (step > schedule_.step_budget) {
      OracleFailure("hang", absl::StrCat("step budget of ", schedule_.step_budget,
                                         " schedule points exceeded (livelock?)"));
    }
    const uint32_t nth_of_kind =
        point_counts_[me][kind].fetch_add(1, std::memory_order_relaxed) + 1;
    const uint32_t nth_point =
        point_counts_[me][Schedule::kAnyPoint].fetch_add(1, std::memory_order_relaxed) + 1;
    for (const Schedule::ChangePoint& change : schedule_.change_points) {
      if (change.thread % threads_ != me) continue;
      if ((change.kind == kind && change.occurrence == nth_of_kind) ||
          (change.kind == Schedule::kAnyPoint && change.occurrence == nth_point)) {
        // Drop below every thread, including those dropped before.
        priority_[me].store(lowest_.fetch_sub(1, std::memory_order_relaxed),
                            std::memory_order_relaxed);
      }
    }
    if (spin) {
      waiting_[me].store(true, std::memory_order_relaxed);
    } else {
      ClearWaiting();  // Progress: waiters may find what they wait for.
    }
    const int next = PickNext();
    if (next == kNone) {
      OracleFailure("hang", absl::StrCat("no runnable thread: every live thread is "
                                         "waiting for another (deadlock or a "
                                         "leaked lock), at step ",
                                         step));
    }
    if (next == static_cast<int>(me)) return;
    HiddenFromTsan hidden;
    current_.store(next, std::memory_order_release);
    WaitForTurnLocked(me);
  }

  void WaitForTurn(size_t me) {
    HiddenFromTsan hidden;
    WaitForTurnLocked(me);
  }

  void WaitForTurnLocked(size_t me) {
    // acquire: pairs with the release store of the thread that handed over.
    while (current_.load(std::memory_order_acquire) != static_cast<int>(me)) {
      sched_yield();
    }
  }

  void ClearWaiting() {
    for (size_t t = 0; t < threads_; ++t) waiting_[t].store(false, std::memory_order_relaxed);
  }

  // The highest-priority thread that has not finished and is not waiting.
  int PickNext() const {
    int best = kNone;
    int best_priority = 0;
    for (size_t t = 0; t < threads_; ++t) {
      if (finished_[t].load(std::memory_order_relaxed) ||
          waiting_[t].load(std::memory_order_relaxed)) {
        continue;
      }
      const int priority = priority_[t].load(std::memory_order_relaxed);
      if (best == kNone || priority > best_priority) {
        best = static_cast<int>(t);
        best_priority = priority;
      }
    }
    return best;
  }

  static thread_local Scheduler* tls_scheduler_;
  static thread_local int tls_me_;

  const Schedule& schedule_;
  World& world_;
  const size_t threads_;
  std::atomic<int> current_{kNone};
  std::atomic<uint32_t> step_{0};
  std::atomic<int> lowest_{0};  // priorities of dropped threads go below 1
  std::atomic<int> in_op_{0};
  std::atomic<size_t> remaining_{threads_};  // threads not yet finished
  std::array<std::atomic<int>, Program::kMaxThreads> priority_{};
  // Points each thread has passed, by kind (and in all, at kAnyPoint).
  std::array<std::array<std::atomic<uint32_t>, Schedule::kPointKinds>, Program::kMaxThreads>
      point_counts_{};
  std::array<std::atomic<bool>, Program::kMaxThreads> finished_{};
  std::array<std::atomic<bool>, Program::kMaxThreads> waiting_{};
};

thread_local Scheduler* Scheduler::tls_scheduler_ = nullptr;
thread_local int Scheduler::tls_me_ = kNone;

}  // namespace

void RunScheduled(const Program& program, const Schedule& schedule) {
  std::string context = "schedule: priorities";
  for (size_t t = 0; t < program.threads.size(); ++t) {
    absl::StrAppend(&context, " t", t, "=", schedule.priorities[t]);
  }
  absl::StrAppend(&context, "; change points");
  for (const Schedule::ChangePoint& change : schedule.change_points) {
    absl::StrAppend(&context, " (thread ", change.thread % program.threads.size(), ", point ",
                    change.occurrence, " of kind ", change.kind, ")");
  }
  if (schedule.change_points.empty()) absl::StrAppend(&context, " none");
  SetFailureContext(std::move(context));
  World world(program);
  {
    Scheduler scheduler(schedule, world);
#if defined(POOLGUARD_SCHEDULE_POINTS)
    poolguard::internal::SetSchedPointHook(&Scheduler::Hook);
#endif
    std::vector<std::thread> threads;
    threads.reserve(world.num_threads());
    for (size_t t = 0; t < world.num_threads(); ++t) {
      threads.emplace_back([&scheduler, t] { scheduler.RunThread(t); });
    }
    for (std::thread& thread : threads) thread.join();
#if defined(POOLGUARD_SCHEDULE_POINTS)
    poolguard::internal::SetSchedPointHook(nullptr);
#endif
  }
  // The last thread ran World::FinishRun(); with no thread at all, run it here.
  if (world.num_threads() == 0) world.FinishRun();
}

}  // namespace poolguard::fuzz
