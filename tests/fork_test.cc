// fork() while another thread is inside pool calls (a server forking a
// helper): the child inherits the pools and must be able to use, flush and
// destroy them, with exact stats, however the fork fell. 200 forks while a
// helper thread loops Alloc/Free (and now and then Flush and GcAll); every
// child allocates, frees, flushes, checks and destroys; none may hang or
// crash.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

constexpr int kForks = 200;
// A child that has not finished in this long is hung (the sanitizers make a
// healthy one take milliseconds).
constexpr auto kChildTimeLimit = std::chrono::seconds(20);

std::unique_ptr<Pool> MakePool(std::string name, size_t object_size, size_t max_objects = 0) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = object_size;
  options.max_objects = max_objects;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

// The child's checks; a failure is its exit status (nothing else is safe to
// report from here). Returns 0 when everything held.
int Child(std::vector<std::unique_ptr<Pool>>& pools) {
  int step = 10;
  for (auto& pool : pools) {
    const PoolStats before = pool->Stats();
    // The helper does not exist here; what it held at the fork stays in use.
    if (before.allocated != before.used + before.free) return step + 1;
    if (before.used > 4) return step + 2;  // The helper holds at most 4.
    std::vector<void*> objects;
    for (int i = 0; i < 70; ++i) {
      void* object = pool->Alloc();
      if (object == nullptr) break;  // The limited pool's limit.
      static_cast<char*>(object)[0] = 1;
      objects.push_back(object);
    }
    if (objects.size() < 2) return step + 3;
    PoolStats during = pool->Stats();
    if (during.used != before.used + objects.size()) return step + 4;
    for (void* object : objects) pool->Free(object);
    pool->Flush();
    const PoolStats after = pool->Stats();
    // Exact: every free object, also those other threads cached, is gone.
    if (after.used != before.used || after.free != 0 || after.allocated != after.used) {
      return step + 5;
    }
    GcAll();
    // Destroy what can be destroyed (nothing of it in use).
    if (after.used == 0) pool.reset();
    step += 10;
  }
  // A pool of the child's own, beside the inherited ones.
  std::unique_ptr<Pool> fresh = MakePool("child", 40);
  if (fresh == nullptr) return 1;
  void* object = fresh->Alloc();
  if (object == nullptr) return 2;
  fresh->Free(object);
  fresh->Flush();
  return 0;
}

TEST(ForkTest, ChildrenOfAProcessMidPoolCallsUseFlushAndDestroyTheirPools) {
  std::vector<std::unique_ptr<Pool>> pools;
  pools.push_back(MakePool("small", 24));
  pools.push_back(MakePool("large", 4096));
  pools.push_back(MakePool("limited", 64, /*max_objects=*/64));
  std::atomic<bool> stop{false};
  std::thread helper([&] {
    std::vector<void*> held;
    for (uint64_t round = 0; !stop.load(std::memory_order_relaxed); ++round) {
      Pool& pool = *pools[round % pools.size()];
      for (int i = 0; i < 4; ++i) {
        if (void* object = pool.Alloc()) held.push_back(object);
      }
      for (void* object : held) pool.Free(object);
      held.clear();
      if (round % 97 == 0) pool.Flush();
      if (round % 389 == 0) GcAll();
    }
  });
  int hung = 0;
  int crashed = 0;
  std::string failures;
  for (int i = 0; i < kForks; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(Child(pools));
    const auto deadline = std::chrono::steady_clock::now() + kChildTimeLimit;
    int status = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (done == 0) {
      ++hung;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      failures += " fork " + std::to_string(i) + ": hung;";
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++crashed;
      failures += " fork " + std::to_string(i) + ": " +
                  (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                       : "exit " + std::to_string(WEXITSTATUS(status))) +
                  ";";
    }
  }
  stop.store(true);
  helper.join();
  EXPECT_EQ(hung, 0) << failures;
  EXPECT_EQ(crashed, 0) << failures;
  // The parent's pools carry on.
  for (auto& pool : pools) {
    void* object = pool->Alloc();
    ASSERT_NE(object, nullptr);
    pool->Free(object);
    pool->Flush();
    const PoolStats stats = pool->Stats();
    EXPECT_EQ(stats.used, 0u);
    EXPECT_EQ(stats.allocated, 0u);
  }
}

}  // namespace
}  // namespace poolguard
