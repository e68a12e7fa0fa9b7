#include "fuzz/scheduled.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz/exec_profile.h"
#include "fuzz/hidden_from_tsan.h"
#include "fuzz/interpreter.h"
#include "fuzz/store_buffers.h"
#include "pool/atomic.h"
#include "pool/sched_point.h"
#include "pool/splitmix64.h"

// The interleaving feedback (see scheduled.h): libFuzzer adds every counter
// of this section to its features, as it does its own coverage counters.
// 8-bit counters, saturating; written only by the thread that holds the
// scheduler's baton (relaxed atomics: the hand-offs are hidden from TSan),
// read by libFuzzer after every thread of the run has been joined.
extern "C" {
__attribute__((section("__libfuzzer_extra_counters"), used))
uint8_t poolguard_interleaving_counters[1 << 16];
}

namespace poolguard::fuzz {
namespace {

constexpr int kNone = -1;
constexpr size_t kCounters = sizeof(poolguard_interleaving_counters);
// The site of the executor's own point before each op, and of a thread's end.
constexpr uint32_t kOpBoundarySite = internal::SchedSiteId("op boundary", 0);
constexpr uint32_t kThreadEndSite = internal::SchedSiteId("thread end", 0);

// The scheduler's own code runs at every schedule point, and is left
// uninstrumented: out of libFuzzer's coverage, as its branches say nothing
// about the pools (the interleaving feedback does that) and its spin loops
// would cost a tracing call per iteration; and unchecked by ASan, which
// guards the pools' memory, not the scheduler's fixed arrays of atomics (its
// checks and stack redzones were most of the time of a schedule point that
// switches nothing: perf, 2026-12-04).
#define POOLGUARD_SCHEDULER_CODE __attribute__((no_sanitize("coverage", "address")))

// Waiting for a word to change. With the run on one CPU (OneCpu below), the
// thread to run next can only run once this one stops: a few yields (which
// switch to it at once when it is runnable), then the kernel (a futex). Off
// it (where pinning was refused), a short spin first: the thread that hands
// over is often on the other core, and the hand-off then takes a fraction of
// a microsecond. The futex calls are invisible to TSan, like the rest of the
// hand-off.
constexpr int kSpinsOffOneCpu = 100;
constexpr int kYieldsBeforeSleeping = 50;

POOLGUARD_SCHEDULER_CODE void FutexWait(std::atomic<uint32_t>& word, uint32_t value) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value, nullptr,
          nullptr, 0);
}

POOLGUARD_SCHEDULER_CODE void FutexWakeAll(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

POOLGUARD_SCHEDULER_CODE inline void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// Blocks until `word` holds `want`, spinning `spins` times first. seq_cst:
// pairs with SetAndWake()'s seq_cst store and load of `sleepers` (either the
// waker sees this sleeper, or the sleeper sees the new value before it
// sleeps).
POOLGUARD_SCHEDULER_CODE void WaitUntil(std::atomic<uint32_t>& word, uint32_t want,
                                        std::atomic<uint32_t>& sleepers, int spins) {
  for (int i = 0; i < spins; ++i) {
    if (word.load(std::memory_order_acquire) == want) return;
    CpuRelax();
  }
  for (int i = 0; i < kYieldsBeforeSleeping; ++i) {
    if (word.load(std::memory_order_acquire) == want) return;
    sched_yield();
  }
  for (;;) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    const uint32_t seen = word.load(std::memory_order_seq_cst);
    if (seen == want) {
      sleepers.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    FutexWait(word, seen);  // Returns at once if `word` is no longer `seen`.
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
}

// Stores `value` in `word` (release: what the caller did happens before the
// waiter's acquire load) and wakes whoever sleeps on it.
POOLGUARD_SCHEDULER_CODE void SetAndWake(std::atomic<uint32_t>& word, uint32_t value,
                                         std::atomic<uint32_t>& sleepers) {
  word.store(value, std::memory_order_seq_cst);
  if (sleepers.load(std::memory_order_seq_cst) != 0) FutexWakeAll(word);
}

// A scheduled run's threads on the CPU its caller is on: one thread runs at a
// time anyway, and a hand-off within one CPU is a direct switch to the woken
// thread, where across CPUs it often means waking an idle CPU. Measured on a
// 2-core VM: 1.3x the executions per second on the checked-in corpus, 1.5x
// on a campaign's grown corpus (1.8x with two fuzzers at once), whose inputs
// switch hundreds of times each. Threads created inside the scope inherit
// the mask; the caller's own is restored at its end, so the next run goes
// wherever the kernel has moved the caller (two fuzzers on two cores stay
// apart). Which thread runs is the schedule's choice either way: replay is
// unchanged.
class OneCpu {
 public:
  OneCpu() {
    const int cpu = sched_getcpu();
    if (cpu < 0 || sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~OneCpu() {
    if (pinned_) sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  OneCpu(const OneCpu&) = delete;
  OneCpu& operator=(const OneCpu&) = delete;

  bool pinned() const { return pinned_; }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

// An on/off switch in the environment: on unless set to "0".
bool EnvSwitchOn(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr || std::string_view(value) != "0";
}

bool FeedbackEnabled() {
  static const bool enabled = EnvSwitchOn("POOLGUARD_INTERLEAVING_FEEDBACK");
  return enabled;
}

// POOLGUARD_STORE_BUFFERS=0 in the environment runs every schedule without
// store buffers, whatever its mode byte says: the control arm of an
// experiment on what the model finds.
bool StoreBuffersEnabled() {
  static const bool enabled = EnvSwitchOn("POOLGUARD_STORE_BUFFERS");
  return enabled;
}

// In a fork child only the forking thread exists: no scheduling at all from
// the first instruction on, which means before poolguard's own fork handlers
// run in the child (they take and release locks: schedule points). So this
// handler is registered at start-up, before any pool exists, and child
// handlers run in the order they were registered. With the hook gone, no
// schedule point of the child reaches the scheduler.
void StopSchedulingInForkChild() {
#if defined(POOLGUARD_SCHEDULE_POINTS)
  poolguard::internal::SetSchedPointHook(nullptr);
  // The child's memory is what the parent's was, every buffered store in it:
  // as if every thread had drained just before the fork.
  poolguard::internal::SetMemoryModel(nullptr);
#endif
}
[[maybe_unused]] const bool g_fork_handler_installed = [] {
  return pthread_atfork(nullptr, nullptr, &StopSchedulingInForkChild) == 0;
}();

// One program thread's ops past an exit_thread op that run in the ending OS
// thread's destructors (thread_local or pthread key).
struct Deferred {
  class Scheduler* scheduler = nullptr;
  size_t slot = 0;
  size_t begin = 0;
  size_t end = 0;
  // Key destructor rounds to pass before the ops run (ExitOp::in_last_round).
  int rounds_to_wait = 0;
  // They then run in the last round (RunDestructorOps()).
  bool last_round = false;
};

// (Plain arrays rather than std::array: in fuzz builds a non-inlined
// operator[] would be instrumented, and the scheduler runs at every point.)
//
// All mutable state shared by the serialized threads is atomic: the hand-off
// is hidden from TSan, so plain fields would be reported as races of the
// scheduler itself. Threads run one at a time, so relaxed order suffices for
// everything but the turn words, whose release/acquire orders the hand-off.
//
// Program threads and OS threads: each program thread ("slot") has a carrier
// OS thread. Ops up to an exit_thread op run on a new OS thread (an
// incarnation) that really ends there, with the ops the exit op names run in
// its thread_local or pthread key destructor; the carrier waits for it (at no
// schedule point, holding nothing), then takes the slot on. So a thread's
// real exit, and glibc's reuse of its stack and TLS for the next one, happen
// under the scheduler: every schedule point of the exit (the backends' exit
// hooks too) is a step of the schedule, and the run replays exactly.
class Scheduler {
 public:
  // `on_one_cpu`: every thread of the run shares one CPU (OneCpu), so a
  // waiting thread does not spin.
  // `buffers`: the run's store buffers, or nullptr (sequential consistency).
  Scheduler(const Schedule& schedule, World& world, uint64_t step_budget, bool on_one_cpu,
            StoreBuffers* buffers)
      : schedule_(schedule),
        world_(world),
        threads_(world.num_threads()),
        step_budget_(step_budget),
        spins_(on_one_cpu ? 0 : kSpinsOffOneCpu),
        buffers_(buffers) {
    for (size_t t = 0; t < threads_; ++t) {
      priority_[t].store(schedule.priorities[t] + 1, std::memory_order_relaxed);
      last_site_[t].store(kOpBoundarySite, std::memory_order_relaxed);
    }
    for (const Schedule::ChangePoint& change : schedule.change_points) {
      const size_t t = change.thread % threads_;
      if (changes_of_[t] == Schedule::kMaxChangePoints) {
        OracleFailure("harness", "more change points than a schedule holds (DecodeSchedule())");
      }
      changes_[t][changes_of_[t]++] = {change.kind, change.occurrence};
    }
    rng_.store(schedule.random_seed, std::memory_order_relaxed);
  }

  // Gives the first turn, once every slot's thread exists: on one CPU, a
  // thread that started running at its creation would keep its creator from
  // creating the rest (and the profile would charge that time twice).
  void Start() {
    const int first = PickNext();
    current_.store(first, std::memory_order_relaxed);
    if (first != kNone) {
      HiddenFromTsan hidden;
      SetAndWake(turn_[first], 1, sleepers_[first]);
    }
  }

  // The carrier of slot `me`: waits for its first turn, runs its ops (those
  // before each exit_thread on a new OS thread), finishes it, leaves.
  void RunSlot(size_t me) {
    Attach(me);
    WaitForTurn(me);
    ChargeTo(ExecPhase::kOps);
    const size_t ops = world_.num_ops(me);
    for (size_t i = 0; i < ops;) {
      size_t exit = i;
      while (exit < ops && world_.op(me, exit).kind != OpKind::kExitThread) ++exit;
      if (exit == ops) {
        RunOps(me, i, ops);
        break;
      }
      const ExitOp how = DecodeExit(world_.op(me, exit).arg);
      const size_t after = std::min(ops, exit + 1 + how.ops_in_destructor);
      ChargeTo(ExecPhase::kThreads);
      std::thread incarnation([this, me, i, exit, after, how] {
        ChargeTo(ExecPhase::kOps);
        Attach(me);
        RunIncarnation(me, i, exit, after, how);
        // (Its exit, after this, is charged to nobody.)
        StopClock();
      });
      StopClock();
      incarnation.join();
      // A thread's exit is a full barrier (the kernel's, and the join's).
      Drain(me);
      ChargeTo(ExecPhase::kOps);
      // The incarnation ended holding the baton (current_ == me): the carrier
      // has it now. Its exit is over: quiescent points can be again.
      in_op_.fetch_sub(1, std::memory_order_relaxed);
      Attach(me);
      i = after;
    }
    Step(me, Schedule::kOpBoundary, kOpBoundarySite);
    in_op_.fetch_add(1, std::memory_order_relaxed);
    ChargeTo(ExecPhase::kOracles);
    world_.FinishThread(me);
    // The thread's caches go back now, while the scheduler controls it: the
    // carrier's real exit, after the scheduler let go, then has nothing to do
    // (no lock taken by a thread no scheduler runs, which a scheduled thread
    // could wait for and be called hung).
    ReleaseThreadCaches();
    Drain(me);  // before the join-like step below, a locked instruction
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
    if (next != kNone) Feedback(kThreadEndSite, last_site_[next].load(std::memory_order_relaxed));
    Detach();
    {
      HiddenFromTsan hidden;
      HandOffStart();
      HandOver(me, next);
      // This OS thread does not end before the whole run has: a thread's
      // teardown (its allocator caches going back, under the allocator's
      // lock) must not overlap another thread's fork(), whose child would
      // inherit that lock held (AddressSanitizer's allocator has no fork
      // handlers in clang 14). The last thread to finish hands over to
      // nobody, which ends the run.
      if (next == kNone) {
        SetAndWake(run_over_, 1, run_over_sleepers_);
      } else {
        WaitUntil(run_over_, 1, run_over_sleepers_, spins_);
      }
    }
  }

  POOLGUARD_SCHEDULER_CODE static void Hook(poolguard::internal::SchedPoint point, uint32_t site) {
    static_assert(poolguard::internal::kSchedPointKinds == Schedule::kPoolPointKinds,
                  "Schedule::kPoolPointKinds must count the SchedPoint kinds");
    Scheduler* scheduler = tls_scheduler_;
    if (scheduler == nullptr) return;  // Not a controlled thread.
    scheduler->Step(static_cast<size_t>(tls_me_), static_cast<int>(point), site);
  }

#if defined(POOLGUARD_SCHEDULE_POINTS)
  // The memory model's entry points (pool/atomic.h) for this run's store
  // buffers. A thread the scheduler does not control (the oracle's own
  // calls, with tls_scheduler_ cleared; threads outside the run) runs when
  // every buffer is empty (quiescent points, before and after the run), so
  // its accesses need no model.
  POOLGUARD_SCHEDULER_CODE static StoreBuffers* ModelOfThisThread() {
    Scheduler* scheduler = tls_scheduler_;
    return scheduler == nullptr ? nullptr : scheduler->buffers_;
  }
  POOLGUARD_SCHEDULER_CODE static void ModelStore(const void* address, size_t size,
                                                  uint64_t old_bits) {
    if (StoreBuffers* buffers = ModelOfThisThread()) {
      buffers->Store(static_cast<size_t>(tls_me_), address, size, old_bits);
    }
  }
  POOLGUARD_SCHEDULER_CODE static bool ModelLoad(const void* address, size_t size, uint64_t* bits) {
    StoreBuffers* buffers = ModelOfThisThread();
    return buffers != nullptr && buffers->Load(static_cast<size_t>(tls_me_), address, size, bits);
  }
  POOLGUARD_SCHEDULER_CODE static void ModelLocked(const void* address, size_t size) {
    if (StoreBuffers* buffers = ModelOfThisThread()) {
      buffers->Locked(static_cast<size_t>(tls_me_), address, size);
    }
  }
  POOLGUARD_SCHEDULER_CODE static void ModelFence() {
    if (StoreBuffers* buffers = ModelOfThisThread()) buffers->Drain(static_cast<size_t>(tls_me_));
  }
  POOLGUARD_SCHEDULER_CODE static void ModelProcessBarrier() {
    if (StoreBuffers* buffers = ModelOfThisThread()) buffers->DrainAll();
  }
  static constexpr internal::MemoryModel kMemoryModel = {&ModelStore, &ModelLoad, &ModelLocked,
                                                         &ModelFence, &ModelProcessBarrier};
#endif

  // A deferred segment, run from a destructor of the ending OS thread.
  void RunDeferred(const Deferred& deferred) {
    RunDestructorOps(deferred.last_round,
                     [&] { RunOps(deferred.slot, deferred.begin, deferred.end); });
  }

 private:
  void Attach(size_t me) {
    tls_scheduler_ = this;
    tls_me_ = static_cast<int>(me);
  }
  static void Detach() {
    tls_scheduler_ = nullptr;
    tls_me_ = kNone;
  }

  // Ops [begin, end) of slot `me`, each after a schedule point, with a
  // quiescent check when no other thread is inside an op.
  void RunOps(size_t me, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Step(me, Schedule::kOpBoundary, kOpBoundarySite);
      if (in_op_.load(std::memory_order_relaxed) == 0) CheckQuiescentUnscheduled(me);
      in_op_.fetch_add(1, std::memory_order_relaxed);
      const OpKind kind = world_.op(me, i).kind;
      ChargeToOp(static_cast<int>(kind), OpKindName(kind).data());
      world_.RunOp(me, i);
      // The op's end: the World's books and the scheduler's counters that
      // follow are locked instructions on x86 (and the other threads'
      // oracles read them to know the op is over).
      Drain(me);
      ChargeToOp(-1, nullptr);
      in_op_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  // On a fresh OS thread: ops [begin, exit), the exit op, and then the end of
  // the thread in the way the exit op says.
  void RunIncarnation(size_t me, size_t begin, size_t exit, size_t after, const ExitOp& how) {
    const ExitPhase phase = how.phase;
    RunOps(me, begin, exit + 1);  // The exit op itself is a no-op in the World.
    // From the exit op until the OS thread is gone, the thread is inside pool
    // calls of its own (its destructors' ops, the backends' exit hooks): no
    // quiescent point. The carrier ends this after the join.
    in_op_.fetch_add(1, std::memory_order_relaxed);
    if (phase == ExitPhase::kReturn || after == exit + 1) return;
    deferred_[me] = Deferred{this,
                             me,
                             exit + 1,
                             after,
                             KeyDestructorRoundsToWait(how),
                             KeyDestructorOpsInLastRound(how)};
    if (phase == ExitPhase::kThreadLocalDestructor) {
      // Constructed now, destroyed as the thread exits (glibc runs C++
      // thread_local destructors before pthread key destructors).
      struct AtThreadLocalDestruction {
        Deferred* deferred = nullptr;
        ~AtThreadLocalDestruction() {
          if (deferred != nullptr) deferred->scheduler->RunDeferred(*deferred);
        }
      };
      static thread_local AtThreadLocalDestruction at_exit;
      at_exit.deferred = &deferred_[me];
      return;
    }
    pthread_setspecific(DeferredKey(), &deferred_[me]);
  }

  static pthread_key_t DeferredKey() {
    static const pthread_key_t key = [] {
      pthread_key_t k;
      if (pthread_key_create(&k, [](void* deferred) {
            auto* d = static_cast<Deferred*>(deferred);
            if (KeyDestructorRoundDue(DeferredKey(), d, d->rounds_to_wait)) {
              d->scheduler->RunDeferred(*d);
            }
          }) != 0) {
        OracleFailure("harness", "no pthread key left for the key destructor phase");
      }
      return k;
    }();
    return key;
  }

  // The oracle's own calls into the pools (Stats() takes the locked backend's
  // lock) pass schedule points; they must neither switch threads in the
  // middle of the check nor count as steps of the schedule.
  void CheckQuiescentUnscheduled(size_t me) {
    ScopedPhase phase(ExecPhase::kOracles);
    tls_scheduler_ = nullptr;
    world_.CheckQuiescent(me);
    tls_scheduler_ = this;
  }

  // One counter for a switch from a thread at site `from` to a thread that
  // resumes at site `to`: an input whose run switches at a new pair of sites
  // is kept by libFuzzer, even if it covers no new code.
  POOLGUARD_SCHEDULER_CODE static void Feedback(uint32_t from, uint32_t to) {
    if (!FeedbackEnabled()) return;
    uint32_t h = (from * 0x9e3779b1u) ^ (to + 0x7f4a7c15u + (from << 6) + (from >> 2));
    h ^= h >> 16;
    auto* counter = &poolguard_interleaving_counters[h % kCounters];
    const uint8_t value = __atomic_load_n(counter, __ATOMIC_RELAXED);
    if (value != 255) __atomic_store_n(counter, value + 1, __ATOMIC_RELAXED);
  }

  // One schedule point of thread `me`: count it, apply a change point, mark a
  // waiting thread, and hand over if another thread should run.
  POOLGUARD_SCHEDULER_CODE void Step(size_t me, int kind, uint32_t site) {
    ScopedPhase phase(ExecPhase::kSchedule);
    const bool spin = kind == static_cast<int>(poolguard::internal::SchedPoint::kSpin);
    // Only the running thread counts (the hand-offs order it): a load and a
    // store, not a locked read-modify-write, at every point.
    const uint32_t step = Bump(step_);
    if (step > step_budget_) {
      OracleFailure("hang", absl::StrCat("step budget of ", step_budget_,
                                         " schedule points exceeded (livelock?)"));
    }
    const uint32_t nth_of_kind = Bump(point_counts_[me][kind]);
    const uint32_t nth_point = Bump(point_counts_[me][Schedule::kAnyPoint]);
    bool dropped = false;
    for (size_t i = 0; i < changes_of_[me]; ++i) {
      const ThreadChange& change = changes_[me][i];
      if ((change.kind == kind && change.occurrence == nth_of_kind) ||
          (change.kind == Schedule::kAnyPoint && change.occurrence == nth_point)) {
        DropBelowAll(me);
        dropped = true;
      }
    }
    if (schedule_.random_preemption_odds != 0 && !spin &&
        NextRandom() % schedule_.random_preemption_odds == 0) {
      DropBelowAll(me);
      dropped = true;
    }
    // The running thread was the highest-priority runnable one when it got
    // the baton, and no other thread's priority, end or waiting mark changes
    // while it runs; only its own drop, its own wait, or waking the waiters
    // can make another thread the next. Otherwise it runs on, with the same
    // choice PickNext() would make (so replay is unchanged), without the walk
    // over every thread.
    // Memory about to go back to the system: the thread drains first, so
    // that no entry of its own outlives the memory it names (another
    // thread's new object there would read it as a stale value).
    if (kind == static_cast<int>(poolguard::internal::SchedPoint::kReleaseSystem)) Drain(me);
    // A waiting thread's buffer drains (on hardware, in a bounded time). A
    // thread marked waiting may have seen an older value that a drain since
    // (this one, or any other thread's) made visible: that is progress.
    if (spin) Drain(me);
    const bool drained_since = DrainedSinceLastStep();
    if (!dropped && !spin && waiters_.load(std::memory_order_relaxed) == 0) return;
    if (spin) {
      if (drained_since) ClearWaiting();
      SetWaiting(me);
    } else {
      ClearWaiting();  // Progress: waiters may find what they wait for.
    }
    const int next = PickNext();
    if (next == kNone) {
      std::string threads;
      for (size_t t = 0; t < threads_; ++t) {
        absl::StrAppend(&threads, " t", t,
                        finished_[t].load(std::memory_order_relaxed) ? " finished" : " waiting");
        if (buffers_ != nullptr)
          absl::StrAppend(&threads, " (", buffers_->buffered(t), " buffered)");
      }
      OracleFailure("hang", absl::StrCat("no runnable thread: every live thread is "
                                         "waiting for another (deadlock or a "
                                         "leaked lock), at step ",
                                         step, ":", threads));
    }
    if (next == static_cast<int>(me)) return;
    last_site_[me].store(site, std::memory_order_relaxed);
    Feedback(site, last_site_[next].load(std::memory_order_relaxed));
    HiddenFromTsan hidden;
    HandOffStart();
    HandOver(me, next);
    WaitForTurnLocked(me);
    HandOffEnd();
    // Resumed: what it stored before the switch reaches memory now, after
    // the threads that ran meanwhile did not see it.
    Drain(me);
  }

  POOLGUARD_SCHEDULER_CODE bool Drain(size_t me) {
    return buffers_ != nullptr && buffers_->Drain(me);
  }

  POOLGUARD_SCHEDULER_CODE bool DrainedSinceLastStep() {
    if (buffers_ == nullptr) return false;
    const uint64_t drains = buffers_->drains();
    if (drains == drains_seen_.load(std::memory_order_relaxed)) return false;
    drains_seen_.store(drains, std::memory_order_relaxed);
    return true;
  }

  // Drop below every thread, including those dropped before.
  POOLGUARD_SCHEDULER_CODE void DropBelowAll(size_t me) {
    priority_[me].store(lowest_.fetch_sub(1, std::memory_order_relaxed), std::memory_order_relaxed);
  }

  // splitmix64 over the schedule's seed: the same draws in every replay.
  // Only the running thread draws (relaxed: the hand-offs order the draws).
  POOLGUARD_SCHEDULER_CODE uint64_t NextRandom() {
    uint64_t state = rng_.load(std::memory_order_relaxed);
    const uint64_t draw = internal::SplitMix64(state);
    rng_.store(state, std::memory_order_relaxed);
    return draw;
  }

  // Thread `me` (which runs) lets `next` (or, with kNone, nobody) run.
  // The release in SetAndWake(): the next thread sees everything this one
  // did (the hand-off's edge is hidden from TSan, not from the hardware).
  POOLGUARD_SCHEDULER_CODE void HandOver(size_t me, int next) {
    turn_[me].store(0, std::memory_order_relaxed);  // Only `me` reads its own.
    current_.store(next, std::memory_order_relaxed);
    if (next != kNone) SetAndWake(turn_[next], 1, sleepers_[next]);
  }

  POOLGUARD_SCHEDULER_CODE void WaitForTurn(size_t me) {
    HiddenFromTsan hidden;
    WaitForTurnLocked(me);
  }

  POOLGUARD_SCHEDULER_CODE void WaitForTurnLocked(size_t me) {
    // acquire (in WaitUntil): pairs with the release of the thread that
    // handed over.
    WaitUntil(turn_[me], 1, sleepers_[me], spins_);
  }

  // +1 on a counter only the running thread writes; returns the new value.
  POOLGUARD_SCHEDULER_CODE static uint32_t Bump(std::atomic<uint32_t>& counter) {
    const uint32_t value = counter.load(std::memory_order_relaxed) + 1;
    counter.store(value, std::memory_order_relaxed);
    return value;
  }

  POOLGUARD_SCHEDULER_CODE void SetWaiting(size_t me) {
    if (waiting_[me].load(std::memory_order_relaxed)) return;
    waiting_[me].store(true, std::memory_order_relaxed);
    Bump(waiters_);
  }

  POOLGUARD_SCHEDULER_CODE void ClearWaiting() {
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    for (size_t t = 0; t < threads_; ++t) waiting_[t].store(false, std::memory_order_relaxed);
    waiters_.store(0, std::memory_order_relaxed);
  }

  // The highest-priority thread that has not finished and is not waiting.
  POOLGUARD_SCHEDULER_CODE int PickNext() const {
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

  // A change point of one thread (Schedule::ChangePoint without the thread).
  struct ThreadChange {
    int kind;
    uint32_t occurrence;
  };

  const Schedule& schedule_;
  World& world_;
  const size_t threads_;
  const uint64_t step_budget_;
  const int spins_;  // before yielding, in WaitUntil()
  StoreBuffers* const buffers_;
  std::atomic<uint64_t> drains_seen_{0};  // buffers_->drains() at the last Step()
  // The thread that runs (kNone: none, the run is over), and each thread's
  // futex word: 1 while it is its turn. Written by the thread that hands
  // over.
  std::atomic<int> current_{kNone};
  std::atomic<uint32_t> turn_[Program::kMaxThreads] = {};
  std::atomic<uint32_t> sleepers_[Program::kMaxThreads] = {};
  // 1 once every thread finished: finished carriers may exit.
  std::atomic<uint32_t> run_over_{0};
  std::atomic<uint32_t> run_over_sleepers_{0};
  std::atomic<uint32_t> step_{0};
  std::atomic<uint64_t> rng_{0};  // NextRandom()'s state, from the schedule's seed
  std::atomic<int> lowest_{0};    // priorities of dropped threads go below 1
  std::atomic<int> in_op_{0};
  std::atomic<size_t> remaining_{threads_};  // threads not yet finished
  std::atomic<int> priority_[Program::kMaxThreads] = {};
  // Points each thread has passed, by kind (and in all, at kAnyPoint).
  std::atomic<uint32_t> point_counts_[Program::kMaxThreads][Schedule::kPointKinds] = {};
  std::atomic<bool> finished_[Program::kMaxThreads] = {};
  std::atomic<bool> waiting_[Program::kMaxThreads] = {};
  // How many waiting_ marks are set.
  std::atomic<uint32_t> waiters_{0};
  // The site each thread last stopped at (where it resumes).
  std::atomic<uint32_t> last_site_[Program::kMaxThreads] = {};
  // The schedule's change points, by thread: matched at every point, so
  // plain arrays (set before any thread starts, then only read) rather than
  // a walk over the schedule's vector.
  ThreadChange changes_[Program::kMaxThreads][Schedule::kMaxChangePoints] = {};
  size_t changes_of_[Program::kMaxThreads] = {};
  // Each slot's ops deferred to its ending OS thread's destructors; written
  // by that slot's own threads only.
  Deferred deferred_[Program::kMaxThreads] = {};
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
  const bool store_buffers = schedule.store_buffers && StoreBuffersEnabled();
  if (store_buffers) absl::StrAppend(&context, "; store buffers (x86-TSO)");
  if (schedule.random_preemption_odds != 0) {
    absl::StrAppend(&context, "; random preemption at odds 1/", schedule.random_preemption_odds,
                    ", seed ", schedule.random_seed);
  }
  SetFailureContext(std::move(context));
  World world(program);
  {
    const OneCpu one_cpu;
    // Each object a program allocates moves through a bounded number of
    // schedule points (alloc, free, the levels of the pool, a flush).
    const uint64_t step_budget =
        schedule.step_budget + uint64_t{Schedule::kStepsPerObject} * MaxObjectsAllocated(program);
    StoreBuffers buffers;
    Scheduler scheduler(schedule, world, step_budget, one_cpu.pinned(),
                        store_buffers ? &buffers : nullptr);
#if defined(POOLGUARD_SCHEDULE_POINTS)
    poolguard::internal::SetSchedPointHook(&Scheduler::Hook);
    if (store_buffers) poolguard::internal::SetMemoryModel(&Scheduler::kMemoryModel);
#endif
    std::vector<std::thread> threads;
    threads.reserve(world.num_threads());
    ChargeTo(ExecPhase::kThreads);
    for (size_t t = 0; t < world.num_threads(); ++t) {
      threads.emplace_back([&scheduler, t] { scheduler.RunSlot(t); });
    }
    scheduler.Start();
    StopClock();
    for (std::thread& thread : threads) thread.join();
    ChargeTo(ExecPhase::kOther);
#if defined(POOLGUARD_SCHEDULE_POINTS)
    poolguard::internal::SetSchedPointHook(nullptr);
    poolguard::internal::SetMemoryModel(nullptr);
#endif
  }
  // The last thread ran World::FinishRun(); with no thread at all, run it here.
  if (world.num_threads() == 0) world.FinishRun();
}

}  // namespace poolguard::fuzz
