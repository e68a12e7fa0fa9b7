// The op interpreter: runs the ops of a Program against the pool API and
// checks the oracles that sanitizers cannot see.
//
// One World serves one run of one program. Threads call RunOp() with their
// own index only; how they interleave, and on which OS thread each op runs,
// is the executor's business (real threads for the free-running executor and
// the stress tests, one thread at a time for the scheduler). A program
// thread's state (what it holds, its private pools) belongs to the program
// thread, not to an OS thread: after an exit_thread op, the OS thread that
// takes its place carries on with it. The oracles:
//   - owner stamps: every held object carries its owner's stamp in every word
//     (of an object over 576 bytes, in its first 512 and last 64 bytes);
//     a stamp changed by anyone else means the object had two owners (or was
//     written by the pool while in use); an object handed through a mailbox
//     is checked by its taker against its giver's stamp;
//   - stats invariants at quiescent points (no op in flight): for every pool,
//     allocated == used + free, allocated <= max_objects, and used == the
//     objects the threads hold plus those in mailboxes (for a backend whose
//     caches count as used, pool/backend_contract.h: used >= that, and equal
//     once every thread's cache went back);
//   - allocated <= max_objects also at any instant (stats op);
//   - flush_contract: a Flush() that ran alone (no other op in flight)
//     leaves no free object of its pool anywhere;
//   - refused_alloc: Alloc() returns nullptr only for a reason: on a pool
//     with no max_objects, a nullptr with no byte limit and no failure
//     injected during the call is a failure; so is one from a pool with a
//     max_objects, when the call ran alone (no other op in flight) and the
//     program held fewer than max_objects of its objects (a free object was
//     somewhere, or room for a new one); and at the run's end, every
//     thread gone, a pool below its max_objects must give one more object;
//   - fork (the first fork op of a run): a child that hangs (fork_hang) or
//     crashes, or whose inherited pools break the same invariants
//     (fork_crash, with what broke);
//   - at the end, after every thread has freed what it held, the mailboxes
//     are emptied and the pools flushed: allocated == used == 0.
// A failed oracle prints what failed, the op and the program, then aborts:
// libFuzzer records that as a crash, a test as a failure.

#ifndef POOLGUARD_FUZZ_INTERPRETER_H_
#define POOLGUARD_FUZZ_INTERPRETER_H_

#include <pthread.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "fuzz/op_program.h"
#include "pool/failure_injection.h"
#include "pool/pool.h"

namespace poolguard::fuzz {

// Reports an oracle failure and aborts. `oracle` is a short stable name
// ("double_owner", "stats_invariant", "hang", "fork_hang", ...) that triage
// tools parse.
[[noreturn]] void OracleFailure(std::string_view oracle, const std::string& message);

// Text OracleFailure() appends to every report (the executor's schedule, for
// instance); empty by default. Set it before the threads start.
void SetFailureContext(std::string context);

// Conditions every World applies once its shared pools exist (so that those
// are always created), and lifts at the end of its run: failure injection
// and the process byte limit (pool/limits.h). The default comes from the
// environment: POOLGUARD_FAIL_EVERY_NTH=N fails every Nth request to the
// system (how CI runs the fuzz corpora with injection on); and
// POOLGUARD_FAIL_MEMBARRIER=N makes membarrier() fail from its Nth call on
// for the rest of the process (how the coverage run reaches the heavy
// barrier's fallback).
struct RunConditions {
  SystemAllocFailures failures;
  size_t byte_limit = 0;
};
// Process-wide; set it before the World is made.
void SetRunConditions(const RunConditions& conditions);

class World {
 public:
  // Pools every thread uses: created before the threads start, destroyed after.
  static constexpr size_t kSharedPools = 4;
  // Pools each thread creates and destroys itself (create/destroy ops).
  static constexpr size_t kPrivatePools = 8;
  // Slots through which threads hand objects of the shared pools over.
  static constexpr size_t kMailboxes = 4;
  // Objects, and bytes of them, one thread may hold at once; allocs beyond
  // are skipped.
  static constexpr size_t kMaxHeld = 4096;
  static constexpr size_t kMaxHeldBytes = 16 << 20;

  // A fork op forks only while no other thread is inside the allocator (the
  // sanitizers' allocators are not fork-safe): the executor sees to it (the
  // scheduled one by its schedule points, the free-running one by a gate).
  explicit World(const Program& program);
  // Runs the final checks (see FinishRun) if not done yet.
  ~World();

  World(const World&) = delete;
  World& operator=(const World&) = delete;

  size_t num_threads() const { return threads_.size(); }
  size_t num_ops(size_t thread) const { return program_.threads[thread].size(); }
  const Op& op(size_t thread, size_t index) const { return program_.threads[thread][index]; }

  // Runs op `index` of thread `thread`. Only thread `thread` may call this
  // with that index, and its ops must run in order. An exit_thread op does
  // nothing here: ending the OS thread is the executor's part.
  void RunOp(size_t thread, size_t index);

  // Frees what thread `thread` still holds (its private pools stay until
  // FinishRun()).
  void FinishThread(size_t thread);

  // Checks the stats invariants of the shared pools and of the private pools
  // of thread `checker` (kAllThreads: of every thread).
  // REQUIRES: no op in flight in any thread. With kAllThreads, also that the
  // caller is ordered after every other thread's ops (joined, or the
  // scheduler's final edge): the private pools are other threads' objects.
  static constexpr size_t kAllThreads = ~size_t{0};
  void CheckQuiescent(size_t checker) const;

  // After every FinishThread(): empties the mailboxes, flushes every pool and
  // checks that nothing is left. REQUIRES: no thread running.
  void FinishRun();

 private:
  struct Held {
    Pool* pool;
    unsigned char* object;
    uint64_t stamp;
  };
  struct ThreadState {
    // Owned by the program thread (whichever OS thread runs it).
    std::vector<Held> held;
    size_t held_bytes = 0;
    std::array<std::unique_ptr<Pool>, kPrivatePools> private_pools;
    uint64_t next_serial = 0;
    // What CheckQuiescent() reads of other threads, mirrored in atomics: the
    // scheduled executor hides its hand-offs from TSan, so plain fields read
    // across threads would be reported as races of the harness. relaxed:
    // quiescent points are ordered by the executor itself. (A thread's
    // private Pool objects themselves are read only by that thread until the
    // run's end, see CheckQuiescent.)
    std::array<std::atomic<size_t>, kSharedPools + kPrivatePools> held_per_pool{};
    // Alloc() calls of this thread that returned nullptr, per pool (a
    // private pool's count restarts with the pool): PoolStats::failed of a
    // quiescent pool is their sum over the threads.
    std::array<std::atomic<size_t>, kSharedPools + kPrivatePools> failed_per_pool{};
    std::array<std::atomic<Pool*>, kPrivatePools> private_pool_view{};
    // Bit i: this thread's op in progress may call shared pool i (or use
    // its objects); a recycle_pool op leaves pool i alone meanwhile.
    std::atomic<uint32_t> using_shared{0};
  };
  // A mailbox: empty, being filled, full, being emptied. A giver moves it
  // kEmpty -> kFilling (CAS), writes `item`, then kFull (release); a taker
  // kFull -> kTaking (CAS, acquire), reads `item`, then kEmpty (release). So
  // the item's fields and the object's stamp pass with the object.
  enum : int { kEmpty, kFilling, kFull, kTaking };
  struct Mailbox {
    std::atomic<int> state{kEmpty};
    Held item{};
    size_t pool_index = 0;
  };

  // Index of `pool` among the pools thread `thread` can reach (shared first).
  size_t PoolIndex(size_t thread, const Pool* pool) const;
  void SetPrivatePool(size_t thread, size_t slot, std::unique_ptr<Pool> pool);

  Pool* PoolFor(size_t thread, uint8_t arg) const;
  // Shared pool `index` (acquire: a recycled pool's construction happens
  // before its use).
  Pool* SharedPool(size_t index) const {
    return shared_view_[index].load(std::memory_order_acquire);
  }
  // The shared pools `op` of `thread` may call or whose objects it may move,
  // a bit each (RunOp() marks them for the op's duration).
  uint32_t SharedPoolsOf(size_t thread, const Op& op) const;
  // RunOp() once the op's shared pools are marked.
  void RunOpUsing(size_t thread, size_t index);
  // Announces the shared pools in `mask` as used by `thread`; false (and
  // nothing announced) if one of them is being recycled.
  bool UseShared(size_t thread, uint32_t mask);
  void DoneWithShared(size_t thread);
  // recycle_pool: destroys shared pool `index` and creates it again, if no
  // thread holds, gives, takes or calls it (others may be mid-call on other
  // pools, binding caches, exiting or forking: what ~Pool must survive).
  void RecyclePool(size_t thread, size_t index);
  uint64_t NewStamp(size_t thread);
  void Stamp(const Held& held) const;
  void CheckStamp(size_t thread, const Held& held, std::string_view when) const;
  std::string Where(size_t thread) const;
  // How many objects of pool `pool_index` (of those thread `thread` reaches)
  // the program holds: for a shared pool, every thread's and the mailboxes'.
  size_t HeldOf(size_t thread, size_t pool_index) const;

  // Counts an op in flight (op_counts_) for its lifetime: RunOp() and a
  // thread's final frees.
  class OpInFlight {
   public:
    explicit OpInFlight(World& world);
    OpInFlight(const OpInFlight&) = delete;
    OpInFlight& operator=(const OpInFlight&) = delete;
    ~OpInFlight();

   private:
    World& world_;
  };
  // Whether the calling op, which read `ops_before` from op_counts_ before
  // a call, made that call (and what followed it until now) alone.
  bool RanAlone(uint64_t ops_before) const;

  // The ops with more to them than a few lines.
  // False if nothing was allocated (held limits, or the pool refused).
  bool AllocOne(size_t thread, Pool* pool);
  void FreeHeld(size_t thread, size_t slot, std::string_view when);
  void Give(size_t thread, uint8_t held_arg, uint8_t mailbox_arg);
  void Take(size_t thread, uint8_t mailbox_arg);
  void Fork(size_t thread);
  // In the child: checks, uses, flushes and destroys the pools the forking
  // thread reaches; returns 0 or a failure code (and has written what failed
  // to stderr).
  int ForkChild(size_t thread);
  // The stats invariants of one pool; `held` is what the program holds of
  // it, `failed` how many of its Alloc() calls returned nullptr.
  void CheckPool(const Pool& pool, size_t held, size_t failed, size_t thread) const;
  // At the run's end, every thread gone: each pool's free objects are
  // Alloc()'s for the thread left, without asking the system for more.
  void CheckFreeReachable(Pool& pool);

  const Program& program_;
  std::array<std::unique_ptr<Pool>, kSharedPools> shared_pools_;
  // shared_pools_[i].get(), for the threads to read while pool i may be
  // recycled; written by the recycling thread (release).
  std::array<std::atomic<Pool*>, kSharedPools> shared_view_{};
  // Bit i: shared pool i is being recycled (or a recycle_pool op is looking
  // whether it may be).
  std::atomic<uint32_t> recycling_{0};
  std::vector<ThreadState> threads_;
  std::array<Mailbox, kMailboxes> mailboxes_;
  // Objects of each shared pool now in a mailbox (kFull or being moved).
  std::array<std::atomic<size_t>, kSharedPools> in_mailboxes_{};
  // Set by the run's first fork op (only the first forks).
  std::atomic<bool> forked_{false};
  // A fail_membarrier op ran: FinishRun() turns the failure off again.
  // relaxed: FinishRun() reads it after every thread of the run has ended
  // (joined), which orders the op's store before it.
  std::atomic<bool> failed_membarrier_{false};
  // Ops in flight (low 32 bits) and ops begun (high 32 bits), updated at
  // each op's start and end: an op that saw the same value before and after
  // a call, with one op in flight (its own), ran that call alone. seq_cst:
  // then every other op's pool calls come wholly before or after it.
  static constexpr uint64_t kOpBegun = uint64_t{1} << 32;
  std::atomic<uint64_t> op_counts_{0};
  bool finished_ = false;
};

// The executors' side of an exit_thread op whose ops run in a pthread key
// destructor. Called by that destructor with its value: true when the ops
// are due now; false after setting `key` to `value` again, one of
// `rounds_to_wait` rounds passed (ExitOp::in_last_round).
bool KeyDestructorRoundDue(pthread_key_t key, void* value, int& rounds_to_wait);

// Runs an ending OS thread's destructor ops. `last_round`: they run in
// glibc's last round of key destructors, after which no exit hook of the
// thread can run. There a thread whose first Alloc() or Free() is among
// them keeps pool.h's rule for it, as any code there must: it gives its
// caches back itself (ReleaseThreadCaches()) once done.
void RunDestructorOps(bool last_round, absl::FunctionRef<void()> ops);

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_INTERPRETER_H_
