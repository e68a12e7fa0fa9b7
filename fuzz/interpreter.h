// The op interpreter: runs the ops of a Program against the pool API and
// checks the oracles that sanitizers cannot see.
//
// One World serves one run of one program. Threads call RunOp() with their
// own index only; how they interleave is the executor's business (real
// threads for the free-running executor and the stress tests, one thread at a
// time for the scheduler). The oracles:
//   - owner stamps: every held object carries its owner's stamp in every word;
//     a stamp changed by anyone else means the object had two owners (or was
//     written by the pool while in use);
//   - stats invariants at quiescent points (no op in flight): for every pool,
//     allocated == used + free and used == the objects the threads hold;
//   - at the end, after every thread has freed what it held and the shared
//     pools are flushed: allocated == used == 0.
// A failed oracle prints what failed, the op and the program, then aborts:
// libFuzzer records that as a crash, a test as a failure.

#ifndef POOLGUARD_FUZZ_INTERPRETER_H_
#define POOLGUARD_FUZZ_INTERPRETER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/op_program.h"
#include "pool/failure_injection.h"
#include "pool/pool.h"

namespace poolguard::fuzz {

// Reports an oracle failure and aborts. `oracle` is a short stable name
// ("double_owner", "stats_invariant", "hang", ...) that triage tools parse.
[[noreturn]] void OracleFailure(std::string_view oracle, const std::string& message);

// Text OracleFailure() appends to every report (the executor's schedule, for
// instance); empty by default. Set it before the threads start.
void SetFailureContext(std::string context);

// Conditions every World applies once its shared pools exist (so that those
// are always created), and lifts at the end of its run: failure injection
// and the process byte limit (pool/limits.h). The default comes from the
// environment: POOLGUARD_FAIL_EVERY_NTH=N fails every Nth request to the
// system (how CI runs the fuzz corpora with injection on), else none.
struct RunConditions {
  SystemAllocFailures failures;
  size_t byte_limit = 0;
};
// Process-wide; set it before the World is made.
void SetRunConditions(const RunConditions& conditions);

class World {
 public:
  // Pools every thread uses: created before the threads start, destroyed after.
  static constexpr size_t kSharedPools = 2;
  // Pools each thread creates and destroys itself (create/destroy ops).
  static constexpr size_t kPrivatePools = 2;
  // Objects one thread may hold at once; further allocs are no-ops.
  static constexpr size_t kMaxHeld = 24;

  explicit World(const Program& program);
  // Runs the final checks (see FinishRun) if not done yet.
  ~World();

  World(const World&) = delete;
  World& operator=(const World&) = delete;

  size_t num_threads() const { return threads_.size(); }
  size_t num_ops(size_t thread) const { return program_.threads[thread].size(); }

  // Runs op `index` of thread `thread`. Only thread `thread` may call this
  // with that index, and its ops must run in order.
  void RunOp(size_t thread, size_t index);

  // Frees what thread `thread` still holds and destroys its private pools.
  void FinishThread(size_t thread);

  // Checks the stats invariants of the shared pools and of the private pools
  // of thread `checker` (kAllThreads: of every thread).
  // REQUIRES: no op in flight in any thread. With kAllThreads, also that the
  // caller is ordered after every other thread's ops (joined, or the
  // scheduler's final edge): the private pools are other threads' objects.
  static constexpr size_t kAllThreads = ~size_t{0};
  void CheckQuiescent(size_t checker) const;

  // After every FinishThread(): flushes the shared pools and checks that
  // nothing is left. REQUIRES: no thread running.
  void FinishRun();

 private:
  struct Held {
    Pool* pool;
    unsigned char* object;
    uint64_t stamp;
  };
  struct ThreadState {
    // Owned by the thread itself.
    std::vector<Held> held;
    std::array<std::unique_ptr<Pool>, kPrivatePools> private_pools;
    uint64_t next_serial = 0;
    // What CheckQuiescent() reads of other threads, mirrored in atomics: the
    // scheduled executor hides its hand-offs from TSan, so plain fields read
    // across threads would be reported as races of the harness. relaxed:
    // quiescent points are ordered by the executor itself. (A thread's
    // private Pool objects themselves are read only by that thread until the
    // run's end, see CheckQuiescent.)
    std::array<std::atomic<size_t>, kSharedPools + kPrivatePools> held_per_pool{};
    std::array<std::atomic<Pool*>, kPrivatePools> private_pool_view{};
  };

  // Index of `pool` among the pools thread `thread` can reach (shared first).
  size_t PoolIndex(size_t thread, const Pool* pool) const;
  void SetPrivatePool(size_t thread, size_t slot, std::unique_ptr<Pool> pool);

  Pool* PoolFor(size_t thread, uint8_t arg) const;
  uint64_t NewStamp(size_t thread);
  void Stamp(const Held& held) const;
  void CheckStamp(size_t thread, const Held& held, std::string_view when) const;
  std::string Where(size_t thread) const;

  const Program& program_;
  std::array<std::unique_ptr<Pool>, kSharedPools> shared_pools_;
  std::vector<ThreadState> threads_;
  bool finished_ = false;
};

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_INTERPRETER_H_
