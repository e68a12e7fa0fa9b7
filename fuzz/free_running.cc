#include "fuzz/free_running.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "fuzz/interpreter.h"

namespace poolguard::fuzz {
namespace {

// clang 14's AddressSanitizer allocator installs no fork handlers: a child
// forked while another thread is inside malloc() inherits the allocator's
// lock held and deadlocks on its first allocation (a report of the harness,
// not of the pools). Here threads run freely, so under ASan fork ops do
// nothing; the scheduled executor forks only while every other thread waits
// at a schedule point, outside malloc(), and so forks under ASan too. (glibc's
// malloc and ThreadSanitizer's runtime are fork-safe.)
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOLGUARD_FORK_UNSAFE_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define POOLGUARD_FORK_UNSAFE_MALLOC 1
#endif
#ifdef POOLGUARD_FORK_UNSAFE_MALLOC
constexpr bool kForks = false;
#else
constexpr bool kForks = true;
#endif

// The ops of slot `slot` in [begin, end), past an exit_thread op, that run in
// the ending OS thread's destructors.
struct Deferred {
  World* world = nullptr;
  size_t slot = 0;
  size_t begin = 0;
  size_t end = 0;
  void Run() const {
    for (size_t i = begin; i < end; ++i) world->RunOp(slot, i);
  }
};

pthread_key_t DeferredKey() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, [](void* d) { static_cast<Deferred*>(d)->Run(); }) != 0) {
      OracleFailure("harness", "no pthread key left for the key destructor phase");
    }
    return k;
  }();
  return key;
}

// Runs slot `slot`'s ops from `begin` on the calling OS thread up to the next
// exit_thread op, and ends the thread the way it says; returns where the next
// OS thread of the slot starts (the end of the program: none).
size_t RunUntilExit(World& world, size_t slot, size_t begin, Deferred& deferred) {
  const size_t ops = world.num_ops(slot);
  size_t i = begin;
  for (; i < ops && world.op(slot, i).kind != OpKind::kExitThread; ++i) world.RunOp(slot, i);
  if (i == ops) return ops;
  const ExitOp how = DecodeExit(world.op(slot, i).arg);
  const size_t after = std::min(ops, i + 1 + how.ops_in_destructor);
  deferred = Deferred{&world, slot, i + 1, after};
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
  World world(program, kForks);
  // A spinning start line rather than a blocking barrier: threads leave it
  // within nanoseconds of each other, so their first ops really overlap.
  std::atomic<size_t> waiting{world.num_threads()};
  std::vector<std::thread> threads;
  threads.reserve(world.num_threads());
  std::vector<Deferred> deferred(world.num_threads());
  for (size_t t = 0; t < world.num_threads(); ++t) {
    threads.emplace_back([&world, &waiting, &deferred, t] {
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
          RunUntilExit(world, t, next, deferred[t]);
          break;
        }
        std::thread incarnation(
            [&world, &deferred, t, next] { RunUntilExit(world, t, next, deferred[t]); });
        incarnation.join();
        const ExitOp how = DecodeExit(world.op(t, exit).arg);
        next = std::min(ops, exit + 1 + how.ops_in_destructor);
      }
      world.FinishThread(t);
    });
  }
  for (std::thread& thread : threads) thread.join();
  world.FinishRun();
}

}  // namespace poolguard::fuzz
