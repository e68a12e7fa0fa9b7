#include "fuzz/free_running.h"

#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include "fuzz/interpreter.h"

namespace poolguard::fuzz {

void RunFreeRunning(const Program& program) {
  World world(program);
  // A spinning start line rather than a blocking barrier: threads leave it
  // within nanoseconds of each other, so their first ops really overlap.
  std::atomic<size_t> waiting{world.num_threads()};
  std::vector<std::thread> threads;
  threads.reserve(world.num_threads());
  for (size_t t = 0; t < world.num_threads(); ++t) {
    threads.emplace_back([&world, &waiting, &program, t] {
      // acq_rel: every thread's arrival is visible to the others before any op.
      waiting.fetch_sub(1, std::memory_order_acq_rel);
      while (waiting.load(std::memory_order_acquire) != 0) sched_yield();
      for (size_t i = 0; i < program.threads[t].size(); ++i) world.RunOp(t, i);
      world.FinishThread(t);
    });
  }
  for (std::thread& thread : threads) thread.join();
  world.FinishRun();
}

}  // namespace poolguard::fuzz
