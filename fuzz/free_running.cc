#include "fuzz/free_running.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "fuzz/hidden_from_tsan.h"
#include "fuzz/interpreter.h"

namespace poolguard::fuzz {
namespace {

// Forks between ops. The sanitizers' allocators in clang 14 take no fork
// handlers: a child forked while another thread is inside malloc() or
// free(), or creating or ending a thread, inherits an allocator lock held
// and hangs on its first allocation (seen under TSan: the child stuck in
// SizeClassAllocator64::GetFromAllocator, reported as fork_hang, a report
// of the harness and not of the pools). So when a program has a fork op,
// every op, every thread creation and every thread's end pass this gate, and
// a fork op waits until it is the only one inside, keeping the others out
// while it forks. Forks inside another thread's pool call are the scheduled
// executor's: there every other thread waits at a schedule point, never
// inside the allocator. The gate's own synchronization is hidden from TSan:
// it must not order the program's threads.
class ForkGate {
 public:
  // Waits while a fork is under way, then counts the caller in.
  void Enter() {
    HiddenFromTsan hidden;
    for (;;) {
      // seq_cst, here and in Fork(): a Dekker pair (either the forker sees
      // this count, or this thread sees the fork and backs out).
      inside_.fetch_add(1, std::memory_order_seq_cst);
      if (!forking_.load(std::memory_order_seq_cst)) return;
      inside_.fetch_sub(1, std::memory_order_seq_cst);
      while (forking_.load(std::memory_order_seq_cst)) sched_yield();
    }
  }
  void Leave() {
    HiddenFromTsan hidden;
    inside_.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Runs `fork_op` (from inside the gate) once every other thread is out.
  template <typename F>
  void Fork(F fork_op) {
    {
      HiddenFromTsan hidden;
      bool expected = false;
      while (!forking_.compare_exchange_weak(expected, true, std::memory_order_seq_cst)) {
        // Another fork op is under way: step out of its way.
        expected = false;
        inside_.fetch_sub(1, std::memory_order_seq_cst);
        while (forking_.load(std::memory_order_seq_cst)) sched_yield();
        inside_.fetch_add(1, std::memory_order_seq_cst);
      }
      while (inside_.load(std::memory_order_seq_cst) != 1) sched_yield();
    }
    fork_op();
    HiddenFromTsan hidden;
    forking_.store(false, std::memory_order_seq_cst);
  }

 private:
  std::atomic<int> inside_{0};
  std::atomic<bool> forking_{false};
};

// Op `i` of slot `slot`, through the gate if there is one. `entered`: the
// caller is already counted in (an incarnation, which its carrier counts in
// for its whole life, its end included).
void RunOpGated(World& world, ForkGate* gate, bool entered, size_t slot, size_t i) {
  if (gate == nullptr) return world.RunOp(slot, i);
  if (!entered) gate->Enter();
  if (world.op(slot, i).kind == OpKind::kFork) {
    gate->Fork([&] { world.RunOp(slot, i); });
  } else {
    world.RunOp(slot, i);
  }
  if (!entered) gate->Leave();
}

// The ops of slot `slot` in [begin, end), past an exit_thread op, that run in
// the ending OS thread's destructors.
struct Deferred {
  World* world = nullptr;
  ForkGate* gate = nullptr;
  size_t slot = 0;
  size_t begin = 0;
  size_t end = 0;
  // Key destructor rounds to pass before the ops run (ExitOp::in_last_round).
  int rounds_to_wait = 0;
  // They then run in the last round (RunDestructorOps()).
  bool last_round = false;
  void Run() const {
    // (Only incarnations defer ops: their carrier counts them in.)
    RunDestructorOps(last_round, [this] {
      for (size_t i = begin; i < end; ++i) RunOpGated(*world, gate, /*entered=*/true, slot, i);
    });
  }
};

pthread_key_t DeferredKey() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, [](void* d) {
          auto* deferred = static_cast<Deferred*>(d);
          if (KeyDestructorRoundDue(DeferredKey(), d, deferred->rounds_to_wait)) deferred->Run();
        }) != 0) {
      OracleFailure("harness", "no pthread key left for the key destructor phase");
    }
    return k;
  }();
  return key;
}

// Runs slot `slot`'s ops from `begin` on the calling OS thread up to the next
// exit_thread op, and ends the thread the way it says; returns where the next
// OS thread of the slot starts (the end of the program: none).
size_t RunUntilExit(World& world, ForkGate* gate, bool entered, size_t slot, size_t begin,
                    Deferred& deferred) {
  const size_t ops = world.num_ops(slot);
  size_t i = begin;
  for (; i < ops && world.op(slot, i).kind != OpKind::kExitThread; ++i) {
    RunOpGated(world, gate, entered, slot, i);
  }
  if (i == ops) return ops;
  const ExitOp how = DecodeExit(world.op(slot, i).arg);
  const size_t after = std::min(ops, i + 1 + how.ops_in_destructor);
  deferred = Deferred{&world,
                      gate,
                      slot,
                      i + 1,
                      after,
                      KeyDestructorRoundsToWait(how),
                      KeyDestructorOpsInLastRound(how)};
  if (how.phase == ExitPhase::kThreadLocalDestructor && after > i + 1) {
    struct AtThreadLocalDestruction {
      Deferred* deferred = nullptr;
      ~AtThreadLocalDestruction() {
        if (deferred != nullptr) deferred->Run();
      }
    };
    static thread_local AtThreadLocalDestruction at_exit;
    at_exit.deferred = &deferred;
  } else if (how.phase == ExitPhase::kKeyDestructor && after > i + 1) {
    pthread_setspecific(DeferredKey(), &deferred);
  }
  return after;
}

}  // namespace

void RunFreeRunning(const Program& program) {
  World world(program);
  bool has_fork = false;
  for (size_t t = 0; t < world.num_threads(); ++t) {
    for (size_t i = 0; i < world.num_ops(t); ++i) has_fork |= world.op(t, i).kind == OpKind::kFork;
  }
  ForkGate fork_gate;
  ForkGate* const gate = has_fork ? &fork_gate : nullptr;
  // A spinning start line rather than a blocking barrier: threads leave it
  // within nanoseconds of each other, so their first ops really overlap.
  // (All threads exist before any op runs: no fork overlaps their creation.)
  std::atomic<size_t> waiting{world.num_threads()};
  // Threads that have not finished yet: a finished thread's OS thread ends
  // only once none is left (after the last fork), so that no thread's end
  // overlaps a fork.
  std::atomic<size_t> unfinished{world.num_threads()};
  std::vector<std::thread> threads;
  threads.reserve(world.num_threads());
  std::vector<Deferred> deferred(world.num_threads());
  for (size_t t = 0; t < world.num_threads(); ++t) {
    threads.emplace_back([&world, gate, &waiting, &unfinished, &deferred, t] {
      // acq_rel: every thread's arrival is visible to the others before any op.
      waiting.fetch_sub(1, std::memory_order_acq_rel);
      while (waiting.load(std::memory_order_acquire) != 0) sched_yield();
      // Each segment that ends in an exit_thread op runs on an OS thread of
      // its own that really ends there (the next one often gets its stack
      // and TLS); this thread carries the slot on after it.
      const size_t ops = world.num_ops(t);
      size_t next = 0;
      while (next < ops) {
        size_t exit = next;
        while (exit < ops && world.op(t, exit).kind != OpKind::kExitThread) ++exit;
        if (exit == ops) {
          RunUntilExit(world, gate, /*entered=*/false, t, next, deferred[t]);
          break;
        }
        // The incarnation is counted in from before its creation until
        // after its end.
        if (gate != nullptr) gate->Enter();
        std::thread incarnation([&world, gate, &deferred, t, next] {
          RunUntilExit(world, gate, /*entered=*/gate != nullptr, t, next, deferred[t]);
        });
        incarnation.join();
        if (gate != nullptr) gate->Leave();
        const ExitOp how = DecodeExit(world.op(t, exit).arg);
        next = std::min(ops, exit + 1 + how.ops_in_destructor);
      }
      if (gate != nullptr) gate->Enter();
      world.FinishThread(t);
      if (gate != nullptr) gate->Leave();
      if (gate == nullptr) return;
      // Hidden from TSan: this wait must not order the threads' ops.
      HiddenFromTsan hidden;
      unfinished.fetch_sub(1, std::memory_order_seq_cst);
      while (unfinished.load(std::memory_order_seq_cst) != 0) sched_yield();
    });
  }
  for (std::thread& thread : threads) thread.join();
  world.FinishRun();
}

}  // namespace poolguard::fuzz
