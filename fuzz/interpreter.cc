#include "fuzz/interpreter.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "pool/backend_contract.h"
#include "pool/failure_injection.h"
#include "pool/limits.h"

namespace poolguard::fuzz {
namespace {

// Whether the calling OS thread has called Alloc() or Free() of any pool
// (for RunDestructorOps()).
thread_local bool tl_called_alloc_or_free = false;

// Creates a pool; nullptr when the system has no memory for it (an injected
// failure), which the ops treat as "no such pool". Any other error is a bug.
std::unique_ptr<Pool> CreateOrNull(const PoolOptions& options) {
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (pool.ok()) return *std::move(pool);
  if (pool.status().code() == absl::StatusCode::kResourceExhausted) return nullptr;
  OracleFailure("create_failed", std::string(pool.status().message()));
}

// The shared pools: a 1-byte object (smaller than a free-list link), a small
// one with a min_free, one with an alignment and a max_objects, and a larger
// aligned one with a big min_free.
PoolOptions SharedPoolOptions(size_t index) {
  PoolOptions options;
  switch (index) {
    case 0:
      options.name = "shared-tiny";
      options.object_size = 1;
      options.alignment = 1;
      break;
    case 1:
      options.name = "shared-small";
      options.object_size = 24;
      options.min_free = 2;
      break;
    case 2:
      options.name = "shared-limited";
      options.object_size = 64;
      options.alignment = 64;
      options.max_objects = 6;
      break;
    default:
      options.name = "shared-aligned";
      options.object_size = 200;
      options.alignment = 256;
      options.min_free = 64;
      break;
  }
  return options;
}

// Shapes of private pools (create_pool's arg / 8): object sizes from 1 byte
// (smaller than a free-list link) to 64 KiB, alignments from 1 to 4096, and
// min_free and max_objects variants. 0: default alignment; a limit of 0:
// none.
struct PoolShape {
  size_t object_size;
  size_t alignment;
  size_t min_free;
  size_t max_objects;
};
constexpr PoolShape kPrivatePoolShapes[32] = {
    {8, 0, 0, 0},         {24, 0, 0, 0},      {1, 1, 0, 0},        {2, 2, 0, 0},
    {4, 4, 0, 0},         {7, 1, 0, 0},       {9, 1, 0, 0},        {15, 0, 0, 0},
    {16, 16, 0, 0},       {40, 0, 1, 0},      {64, 64, 0, 0},      {100, 4, 0, 3},
    {128, 128, 4, 0},     {256, 256, 0, 8},   {1024, 1024, 0, 0},  {4096, 4096, 0, 0},
    {16384, 4096, 0, 64}, {65536, 0, 0, 0},   {65536, 4096, 1, 0}, {1, 0, 0, 1},
    {8, 8, 0, 3},         {24, 0, 64, 0},     {48, 0, 0, 1000},    {3, 1, 1, 0},
    {5, 1, 0, 8},         {12, 4, 0, 0},      {33, 1, 0, 0},       {200, 8, 4, 64},
    {512, 512, 0, 0},     {2048, 2048, 0, 3}, {8192, 8, 0, 0},     {32768, 64, 1, 0},
};

PoolOptions PrivatePoolOptions(size_t thread, size_t slot, uint8_t shape) {
  const PoolShape& s = kPrivatePoolShapes[shape % 32];
  PoolOptions options;
  options.name = absl::StrCat("private-t", thread, "-", slot);
  options.object_size = s.object_size;
  if (s.alignment != 0) options.alignment = s.alignment;
  options.min_free = s.min_free;
  options.max_objects = s.max_objects;
  return options;
}

// Written before the controlled threads start, read when one fails.
std::string& FailureContext() {
  static auto* context = new std::string;
  return *context;
}

RunConditions ConditionsFromEnvironment() {
  RunConditions conditions;
  if (const char* every_nth = std::getenv("POOLGUARD_FAIL_EVERY_NTH")) {
    conditions.failures.every_nth = std::strtoull(every_nth, nullptr, 10);
    // Said once, so that a log shows the run had injection on.
    std::fprintf(stderr, "poolguard: failure injection on, POOLGUARD_FAIL_EVERY_NTH=%llu\n",
                 static_cast<unsigned long long>(conditions.failures.every_nth));
  }
  if (const char* from_call = std::getenv("POOLGUARD_FAIL_MEMBARRIER")) {
    const uint64_t nth = std::strtoull(from_call, nullptr, 10);
    SetSystemCallFailure(SystemCall::kMembarrier, EPERM, nth == 0 ? 1 : nth);
    std::fprintf(stderr, "poolguard: membarrier() fails from call %llu on\n",
                 static_cast<unsigned long long>(nth == 0 ? 1 : nth));
  }
  return conditions;
}

// Written before the threads start (SetRunConditions), read by World's
// constructor on the thread that makes it.
RunConditions& Conditions() {
  static auto* conditions = new RunConditions(ConditionsFromEnvironment());
  return *conditions;
}

// Set in builds with clang's source-based coverage (tools/coverage.sh): the
// profile runtime writes at exit(), which a fork child skips.
extern "C" int __llvm_profile_write_file(void) __attribute__((weak));

// A fork child's share of the coverage, where the build measures it; its file
// is its own when LLVM_PROFILE_FILE names one per process (%p).
void WriteCoverageProfile() {
  if (__llvm_profile_write_file != nullptr) __llvm_profile_write_file();
}

// How long a fork child may take before it is called hung: a healthy one
// takes milliseconds, also under the sanitizers.
constexpr auto kForkChildTimeLimit = std::chrono::seconds(10);

// The child's report: no stdio (another thread may have held stderr's lock
// at the fork), no allocation beyond what the pools do.
void ChildSays(const char* format, ...) __attribute__((format(printf, 1, 2)));
void ChildSays(const char* format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  if (n > 0) {
    const ssize_t written = write(STDERR_FILENO, message, std::min<size_t>(n, sizeof(message) - 1));
    static_cast<void>(written);
  }
}

}  // namespace

void SetFailureContext(std::string context) { FailureContext() = std::move(context); }

void SetRunConditions(const RunConditions& conditions) { Conditions() = conditions; }

void OracleFailure(std::string_view oracle, const std::string& message) {
  std::fprintf(stderr, "poolguard oracle failure [%.*s]: %s\n%s\n", static_cast<int>(oracle.size()),
               oracle.data(), message.c_str(), FailureContext().c_str());
  std::fflush(stderr);
  std::abort();
}

World::World(const Program& program) : program_(program), threads_(program.threads.size()) {
  // Each run starts with no failure pending from an earlier one.
  ClearSystemAllocFailures();
  for (size_t i = 0; i < kSharedPools; ++i) {
    shared_pools_[i] = CreateOrNull(SharedPoolOptions(i));
    shared_view_[i].store(shared_pools_[i].get(), std::memory_order_relaxed);
    if (shared_pools_[i] == nullptr) {
      OracleFailure("create_failed", "no memory for the shared pools");
    }
  }
  SetSystemAllocFailures(Conditions().failures);
  SetProcessByteLimit(Conditions().byte_limit);
}

World::~World() {
  if (!finished_) {
    for (size_t t = 0; t < threads_.size(); ++t) FinishThread(t);
    FinishRun();
  }
}

Pool* World::PoolFor(size_t thread, uint8_t arg) const {
  const size_t index = arg % (kSharedPools + kPrivatePools);
  if (index < kSharedPools) return SharedPool(index);
  return threads_[thread].private_pools[index - kSharedPools].get();
}

size_t World::PoolIndex(size_t thread, const Pool* pool) const {
  for (size_t i = 0; i < kSharedPools; ++i) {
    if (SharedPool(i) == pool) return i;
  }
  for (size_t i = 0; i < kPrivatePools; ++i) {
    if (threads_[thread].private_pools[i].get() == pool) return kSharedPools + i;
  }
  OracleFailure("harness", "held object of an unknown pool");
}

void World::SetPrivatePool(size_t thread, size_t slot, std::unique_ptr<Pool> pool) {
  ThreadState& state = threads_[thread];
  state.private_pool_view[slot].store(pool.get(), std::memory_order_relaxed);
  state.failed_per_pool[kSharedPools + slot].store(0, std::memory_order_relaxed);
  state.private_pools[slot] = std::move(pool);
}

uint64_t World::NewStamp(size_t thread) {
  // Owner in the top byte, a per-thread serial below: unique per hand-out.
  return (uint64_t{thread + 1} << 56) | ++threads_[thread].next_serial;
}

namespace {

// The stamp loops are left out of libFuzzer's coverage: a comparison per word
// would be traced, and their branches say nothing about the pools.
#define POOLGUARD_NOT_COVERED __attribute__((no_sanitize("coverage")))

// Which bytes of an object carry its owner's stamp: all of them up to
// kStampedHead + kStampedTail bytes; of a bigger object its first
// kStampedHead and last kStampedTail bytes (a 64 KiB object stamped whole
// would cost the fuzzers more than it finds: a second owner writes its own
// stamp from the start, and a slot overlapping the next reaches its tail).
// The stamp's bytes repeat every 8 bytes from the object's start.
constexpr size_t kStampedHead = 512;
constexpr size_t kStampedTail = 64;
struct StampedRanges {
  size_t head_end;    // [0, head_end)
  size_t tail_begin;  // [tail_begin, size)
};
StampedRanges StampedRangesOf(size_t size) {
  if (size <= kStampedHead + kStampedTail) return {size, size};
  // The tail starts on a word boundary, so it is whole words too.
  return {kStampedHead, (size - kStampedTail) & ~size_t{7}};
}

POOLGUARD_NOT_COVERED void StampBytes(unsigned char* object, size_t begin, size_t end,
                                      uint64_t stamp) {
  size_t i = begin;
  for (; i + sizeof(uint64_t) <= end; i += sizeof(uint64_t)) {
    std::memcpy(object + i, &stamp, sizeof(uint64_t));
  }
  for (; i < end; ++i) object[i] = static_cast<unsigned char>(stamp >> (8 * (i % 8)));
}

// Whether bytes [begin, end) of `object` hold what StampBytes() wrote.
POOLGUARD_NOT_COVERED bool StampIntact(const unsigned char* object, size_t begin, size_t end,
                                       uint64_t stamp) {
  uint64_t differ = 0;
  size_t i = begin;
  for (; i + sizeof(uint64_t) <= end; i += sizeof(uint64_t)) {
    uint64_t value;
    std::memcpy(&value, object + i, sizeof(value));
    differ |= value ^ stamp;
  }
  for (; i < end; ++i) {
    differ |= object[i] ^ static_cast<unsigned char>(stamp >> (8 * (i % 8)));
  }
  return differ == 0;
}

}  // namespace

POOLGUARD_NOT_COVERED void World::Stamp(const Held& held) const {
  const size_t size = held.pool->object_size();
  const StampedRanges ranges = StampedRangesOf(size);
  StampBytes(held.object, 0, ranges.head_end, held.stamp);
  StampBytes(held.object, ranges.tail_begin, size, held.stamp);
}

POOLGUARD_NOT_COVERED void World::CheckStamp(size_t thread, const Held& held,
                                             std::string_view when) const {
  // The image Stamp() writes: whole words of the stamp, then its low bytes.
  // Compared without a branch per byte (one per range), so that a fuzz
  // build's comparison tracing costs little; the failing byte is looked for
  // only after a mismatch.
  const size_t size = held.pool->object_size();
  const StampedRanges ranges = StampedRangesOf(size);
  if (!StampIntact(held.object, 0, ranges.head_end, held.stamp) ||
      !StampIntact(held.object, ranges.tail_begin, size, held.stamp)) {
    unsigned char word[sizeof(uint64_t)];
    std::memcpy(word, &held.stamp, sizeof(word));
    size_t i = 0;
    while (i < size && held.object[i] == word[i % sizeof(word)]) {
      i = i + 1 == ranges.head_end ? ranges.tail_begin : i + 1;
    }
    OracleFailure(
        "double_owner",
        absl::StrCat("object ", absl::Hex(reinterpret_cast<uintptr_t>(held.object)), " of pool '",
                     held.pool->name(), "' held by thread ", thread,
                     " changed under its owner (byte ", i, " is ", i < size ? held.object[i] : 0,
                     ", stamp byte ", word[i % sizeof(word)], ") ", when, "; ", Where(thread)));
  }
}

std::string World::Where(size_t thread) const {
  return absl::StrCat("backend ", BackendName(), ", thread ", thread, "\nprogram:\n",
                      ProgramToString(program_));
}

bool World::AllocOne(size_t thread, Pool* pool) {
  ThreadState& state = threads_[thread];
  if (pool == nullptr || state.held.size() >= kMaxHeld ||
      state.held_bytes + pool->object_size() > kMaxHeldBytes) {
    return false;
  }
  const uint64_t injected_before = InjectedSystemAllocFailures();
  const uint64_t ops_before = op_counts_.load(std::memory_order_seq_cst);
  tl_called_alloc_or_free = true;
  void* object = pool->Alloc();
  if (object == nullptr) {
    const size_t pool_index = PoolIndex(thread, pool);
    // A limit, or no memory: both allowed, and counted (PoolStats::failed).
    state.failed_per_pool[pool_index].fetch_add(1, std::memory_order_relaxed);
    // Without either, a nullptr is a pool that refuses what it could give.
    // Only where nothing else can explain it: no process byte limit, no
    // request refused by injection during the call (by any thread: so a
    // concurrent fail_next never makes this report), and either a pool with
    // no max_objects of its own, or one whose call ran alone: then no other
    // thread held any of its objects in flight or in a drain, so if the
    // program held fewer than max_objects of them, one was free somewhere
    // (a cache, a transfer, the shared level) or could be made.
    if (ProcessByteLimit() != 0 || InjectedSystemAllocFailures() != injected_before) return false;
    if (pool->max_objects() == internal::Backend::kMaxObjects) {
      OracleFailure("refused_alloc",
                    absl::StrCat("Alloc() on pool '", pool->name(),
                                 "' returned nullptr with no max_objects, no byte limit and no "
                                 "injected failure; ",
                                 Where(thread)));
    }
    // What the program held, read before RanAlone()'s last look: that look
    // then also says no op began since the call did, so the counts read
    // here are those of the call. (Read after it, another thread's free
    // that began meanwhile can lower them below the limit the call met.)
    const size_t held = HeldOf(thread, pool_index);
    if (!RanAlone(ops_before)) return false;
    if (held < pool->max_objects()) {
      const PoolStats stats = pool->Stats();
      OracleFailure(
          "refused_alloc",
          absl::StrCat("Alloc() on pool '", pool->name(), "' (max_objects ", pool->max_objects(),
                       ") returned nullptr while the program held ", held,
                       " of its objects and no other op was in flight, with no "
                       "byte limit and no injected failure: a free object somewhere, or "
                       "room for a new one (the pool now says allocated ",
                       stats.allocated, ", used ", stats.used, ", free ", stats.free, "); ",
                       Where(thread)));
    }
    return false;
  }
  Held held{pool, static_cast<unsigned char*>(object), NewStamp(thread)};
  Stamp(held);
  state.held.push_back(held);
  state.held_bytes += pool->object_size();
  state.held_per_pool[PoolIndex(thread, pool)].fetch_add(1, std::memory_order_relaxed);
  return true;
}

void World::FreeHeld(size_t thread, size_t slot, std::string_view when) {
  ThreadState& state = threads_[thread];
  const Held held = state.held[slot];
  CheckStamp(thread, held, when);
  state.held[slot] = state.held.back();
  state.held.pop_back();
  state.held_bytes -= held.pool->object_size();
  tl_called_alloc_or_free = true;
  held.pool->Free(held.object);
  state.held_per_pool[PoolIndex(thread, held.pool)].fetch_sub(1, std::memory_order_relaxed);
}

void World::Give(size_t thread, uint8_t held_arg, uint8_t mailbox_arg) {
  ThreadState& state = threads_[thread];
  if (state.held.empty()) return;
  const size_t slot = held_arg % state.held.size();
  const Held held = state.held[slot];
  const size_t pool_index = PoolIndex(thread, held.pool);
  if (pool_index >= kSharedPools) return;  // Only shared pools' objects travel.
  Mailbox& mailbox = mailboxes_[mailbox_arg % kMailboxes];
  int expected = kEmpty;
  // acquire: pairs with the taker's release of kEmpty (its reads of the item
  // are done).
  if (!mailbox.state.compare_exchange_strong(expected, kFilling, std::memory_order_acquire)) {
    return;  // Full, or another thread is at it.
  }
  CheckStamp(thread, held, "before give");
  state.held[slot] = state.held.back();
  state.held.pop_back();
  state.held_bytes -= held.pool->object_size();
  state.held_per_pool[pool_index].fetch_sub(1, std::memory_order_relaxed);
  in_mailboxes_[pool_index].fetch_add(1, std::memory_order_relaxed);
  mailbox.item = held;
  mailbox.pool_index = pool_index;
  // release: the item, and the object's stamp, reach the taker.
  mailbox.state.store(kFull, std::memory_order_release);
}

void World::Take(size_t thread, uint8_t mailbox_arg) {
  ThreadState& state = threads_[thread];
  Mailbox& mailbox = mailboxes_[mailbox_arg % kMailboxes];
  if (state.held.size() >= kMaxHeld) return;
  int expected = kFull;
  // acquire: pairs with the giver's release of kFull.
  if (!mailbox.state.compare_exchange_strong(expected, kTaking, std::memory_order_acquire)) return;
  Held held = mailbox.item;
  const size_t pool_index = mailbox.pool_index;
  // The giver's stamp must have survived the trip: nobody else owned it.
  CheckStamp(thread, held, "when taken from a mailbox");
  held.stamp = NewStamp(thread);
  Stamp(held);
  state.held.push_back(held);
  state.held_bytes += held.pool->object_size();
  state.held_per_pool[pool_index].fetch_add(1, std::memory_order_relaxed);
  in_mailboxes_[pool_index].fetch_sub(1, std::memory_order_relaxed);
  // release: our reads of the item are done before the next giver writes it.
  mailbox.state.store(kEmpty, std::memory_order_release);
}

void World::CheckPool(const Pool& pool, size_t held, size_t failed, size_t thread) const {
  const PoolStats stats = pool.Stats();
  // A backend whose thread caches count as used (pool/backend_contract.h):
  // used may exceed what the program holds by what the caches keep.
  const bool cached_are_used =
      internal::StatsSemanticsOf<internal::Backend>() == StatsSemantics::kCachedAreUsed;
  const bool used_ok = cached_are_used ? stats.used >= held : stats.used == held;
  if (stats.allocated != stats.used + stats.free || !used_ok ||
      stats.allocated > pool.max_objects() || stats.failed != failed) {
    OracleFailure(
        "stats_invariant",
        absl::StrCat("pool '", pool.name(), "': allocated ", stats.allocated, ", used ", stats.used,
                     ", free ", stats.free, ", failed ", stats.failed, ", max_objects ",
                     pool.max_objects(), ", held by the threads and mailboxes ", held,
                     ", nullptr returns seen ", failed,
                     "; expected allocated == used + free <= max_objects, used ",
                     cached_are_used ? ">=" : "==", " held, failed == the nullptr returns; ",
                     Where(thread)));
  }
}

void World::CheckFreeReachable(Pool& pool) {
  // PoolStats::free counts objects "ready for Alloc() without asking the
  // system". With the run's threads gone, the only thread left must get
  // every one of them: a free object the pool cannot hand out (in the cache
  // of a thread that exited without giving it back, or lost between levels)
  // is memory stranded until the next Flush(). The objects are not stamped:
  // they go straight back.
  const PoolStats before = pool.Stats();
  std::vector<void*> taken;
  taken.reserve(before.free);
  while (taken.size() < before.free) {
    void* object = pool.Alloc();
    if (object == nullptr) break;
    taken.push_back(object);
  }
  const PoolStats after = pool.Stats();
  const size_t nullptrs = before.free - taken.size();
  if (nullptrs != 0 || after.allocated != before.allocated) {
    OracleFailure(
        "stranded_free",
        absl::StrCat("pool '", pool.name(), "' after the run, every thread gone: free ",
                     before.free, " (allocated ", before.allocated, ", used ", before.used,
                     "), but of ", before.free, " Alloc() calls on the one thread left ", nullptrs,
                     " returned nullptr and allocated went to ", after.allocated,
                     ": free objects the pool cannot hand out (a dead thread's cache never "
                     "given back?); ",
                     Where(0)));
  }
  // Below its max_objects, with the run's conditions lifted, the pool must
  // give one more (from the system): a pool that refuses below its limit is
  // as broken as one that strands its free objects.
  if (after.allocated < pool.max_objects()) {
    void* beyond = pool.Alloc();
    if (beyond == nullptr) {
      OracleFailure(
          "refused_alloc",
          absl::StrCat("pool '", pool.name(), "' after the run, every thread gone: allocated ",
                       after.allocated, " < max_objects ", pool.max_objects(),
                       " and no failure injected, but Alloc() returned nullptr; ", Where(0)));
    }
    taken.push_back(beyond);
  }
  for (void* object : taken) pool.Free(object);
  // What this thread's caches now hold goes back, as before the check.
  ReleaseThreadCaches();
}

uint32_t World::SharedPoolsOf(size_t thread, const Op& op) const {
  constexpr uint32_t kAllShared = (uint32_t{1} << kSharedPools) - 1;
  const ThreadState& state = threads_[thread];
  auto bit_of = [this, thread](const Pool* pool) -> uint32_t {
    const size_t index = pool == nullptr ? kSharedPools : PoolIndex(thread, pool);
    return index < kSharedPools ? uint32_t{1} << index : 0;
  };
  // By index, as PoolFor() picks: the pointer may change under a recycle
  // until the mark is up. (A held object's pool cannot be recycled.)
  auto bit_of_arg = [](uint8_t arg) -> uint32_t {
    const size_t index = arg % (kSharedPools + kPrivatePools);
    return index < kSharedPools ? uint32_t{1} << index : 0;
  };
  switch (op.kind) {
    case OpKind::kAlloc:
    case OpKind::kFlush:
    case OpKind::kStats:
      return bit_of_arg(op.arg);
    case OpKind::kAllocBulk:
      return bit_of_arg(op.arg % 16);
    case OpKind::kFree:
      return state.held.empty() ? 0 : bit_of(state.held[op.arg % state.held.size()].pool);
    case OpKind::kGive:
      return state.held.empty()
                 ? 0
                 : bit_of(state.held[(op.arg / kMailboxes) % state.held.size()].pool);
    case OpKind::kFreeBulk:
    case OpKind::kTake:  // (which pool's object it takes shows only once it has it)
      return kAllShared;
    default:
      // No pool call, or only through the registry (gc_all, dump_pools,
      // release_caches), which a pool leaves before it is destroyed.
      return 0;
  }
}

bool World::UseShared(size_t thread, uint32_t mask) {
  std::atomic<uint32_t>& using_shared = threads_[thread].using_shared;
  // seq_cst, here and in RecyclePool(): either the recycler sees this mark,
  // or this thread sees the recycling bit and stays away.
  using_shared.store(mask, std::memory_order_seq_cst);
  if ((recycling_.load(std::memory_order_seq_cst) & mask) == 0) return true;
  using_shared.store(0, std::memory_order_relaxed);
  return false;
}

void World::DoneWithShared(size_t thread) {
  // release: this thread's calls on the pools happen before a recycler's
  // destruction of one of them (its acquire load of the mark).
  threads_[thread].using_shared.store(0, std::memory_order_release);
}

void World::RecyclePool(size_t thread, size_t index) {
  const uint32_t bit = uint32_t{1} << index;
  if ((recycling_.fetch_or(bit, std::memory_order_seq_cst) & bit) != 0) return;
  bool idle = true;
  for (size_t t = 0; t < threads_.size() && idle; ++t) {
    // acquire: pairs with DoneWithShared(), so that the counts read below
    // include what thread t's last op on the pool did; seq_cst: see
    // UseShared().
    if (t != thread && (threads_[t].using_shared.load(std::memory_order_seq_cst) & bit) != 0) {
      idle = false;
    }
    if (threads_[t].held_per_pool[index].load(std::memory_order_relaxed) != 0) idle = false;
  }
  // After every mark was read: a give or take that ended before has its
  // count in place (its thread's release, our acquire above).
  if (in_mailboxes_[index].load(std::memory_order_relaxed) != 0) idle = false;
  if (idle) {
    // The new pool first: if the system refuses it, the old one stays.
    std::unique_ptr<Pool> fresh = CreateOrNull(SharedPoolOptions(index));
    if (fresh != nullptr) {
      // release: pairs with SharedPool()'s acquire.
      shared_view_[index].store(fresh.get(), std::memory_order_release);
      std::swap(shared_pools_[index], fresh);
      fresh.reset();  // ~Pool of the old one, while other threads run.
      for (ThreadState& state : threads_) {
        state.failed_per_pool[index].store(0, std::memory_order_relaxed);
      }
    }
  }
  // release: the recycle happens before the next use of the pool.
  recycling_.fetch_and(~bit, std::memory_order_release);
}

size_t World::HeldOf(size_t thread, size_t pool_index) const {
  if (pool_index >= kSharedPools) {
    return threads_[thread].held_per_pool[pool_index].load(std::memory_order_relaxed);
  }
  size_t held = in_mailboxes_[pool_index].load(std::memory_order_relaxed);
  for (const ThreadState& state : threads_) {
    held += state.held_per_pool[pool_index].load(std::memory_order_relaxed);
  }
  return held;
}

World::OpInFlight::OpInFlight(World& world) : world_(world) {
  world_.op_counts_.fetch_add(kOpBegun + 1, std::memory_order_seq_cst);
}

World::OpInFlight::~OpInFlight() { world_.op_counts_.fetch_sub(1, std::memory_order_seq_cst); }

bool World::RanAlone(uint64_t ops_before) const {
  return (ops_before & (kOpBegun - 1)) == 1 &&
         op_counts_.load(std::memory_order_seq_cst) == ops_before;
}

void World::RunOp(size_t thread, size_t index) {
  const OpInFlight in_flight(*this);
  const uint32_t mask = SharedPoolsOf(thread, program_.threads[thread][index]);
  if (mask == 0) {
    RunOpUsing(thread, index);
  } else if (UseShared(thread, mask)) {  // A pool being recycled: the op is skipped.
    RunOpUsing(thread, index);
    DoneWithShared(thread);
  }
}

void World::RunOpUsing(size_t thread, size_t index) {
  ThreadState& state = threads_[thread];
  const Op& op = program_.threads[thread][index];
  switch (op.kind) {
    case OpKind::kAlloc:
      AllocOne(thread, PoolFor(thread, op.arg));
      return;
    case OpKind::kFree:
      if (!state.held.empty()) FreeHeld(thread, op.arg % state.held.size(), "before free");
      return;
    case OpKind::kWriteStamp: {
      if (state.held.empty()) return;
      Held& held = state.held[op.arg % state.held.size()];
      CheckStamp(thread, held, "before re-stamp");
      held.stamp = NewStamp(thread);
      Stamp(held);
      return;
    }
    case OpKind::kCheckStamp:
      if (!state.held.empty())
        CheckStamp(thread, state.held[op.arg % state.held.size()], "on check");
      return;
    case OpKind::kFlush: {
      Pool* pool = PoolFor(thread, op.arg);
      if (pool == nullptr) return;
      const uint64_t ops_before = op_counts_.load(std::memory_order_seq_cst);
      pool->Flush();
      // pool.h: once other threads are quiet, allocated == used. A flush
      // that ran alone had them quiet throughout: no free object may be
      // left anywhere (a cache, a transfer cache, the shared level).
      const PoolStats stats = pool->Stats();
      if (RanAlone(ops_before) && stats.free != 0) {
        OracleFailure("flush_contract",
                      absl::StrCat("pool '", pool->name(),
                                   "' after a Flush() with no other op in "
                                   "flight: allocated ",
                                   stats.allocated, ", used ", stats.used, ", free ", stats.free,
                                   "; expected free 0; ", Where(thread)));
      }
      return;
    }
    case OpKind::kGcAll:
      GcAll();
      return;
    case OpKind::kCreatePool: {
      static_assert(kPrivatePools == 8, "create_pool's arg: slot % 8, shape / 8");
      const size_t slot = op.arg % kPrivatePools;
      if (state.private_pools[slot] == nullptr) {
        SetPrivatePool(thread, slot,
                       CreateOrNull(PrivatePoolOptions(thread, slot, op.arg / kPrivatePools)));
      }
      return;
    }
    case OpKind::kDestroyPool: {
      const size_t slot = op.arg % kPrivatePools;
      if (state.private_pools[slot] == nullptr) return;
      if (state.held_per_pool[kSharedPools + slot].load(std::memory_order_relaxed) != 0) {
        return;  // Only pools with nothing held are destroyed.
      }
      SetPrivatePool(thread, slot, nullptr);
      return;
    }
    case OpKind::kFailNextSystemAlloc:
      FailNextSystemAllocation();
      return;
    case OpKind::kGive:
      Give(thread, op.arg / kMailboxes, op.arg % kMailboxes);
      return;
    case OpKind::kTake:
      Take(thread, op.arg);
      return;
    case OpKind::kAllocBulk: {
      Pool* pool = PoolFor(thread, op.arg % 16);
      if (pool == nullptr) return;
      const size_t n =
          std::min(BulkCount(op.arg / 16), std::max<size_t>(1, (2 << 20) / pool->object_size()));
      // Until the first refusal, as a server's loop would: a pool at its
      // limit refuses each further call only after taking back every
      // thread's cache, which is not cheap.
      for (size_t i = 0; i < n && AllocOne(thread, pool); ++i) {
      }
      return;
    }
    case OpKind::kFreeBulk: {
      const size_t n = std::min(BulkCount(op.arg), state.held.size());
      // The newest first: the reverse of their allocation.
      for (size_t i = 0; i < n; ++i) FreeHeld(thread, state.held.size() - 1, "before free_n");
      return;
    }
    case OpKind::kStats: {
      const Pool* pool = PoolFor(thread, op.arg);
      if (pool == nullptr) return;
      // Mid-run: only what holds at every instant.
      const PoolStats stats = pool->Stats();
      if (stats.free > stats.allocated || stats.used > stats.allocated ||
          stats.allocated > pool->max_objects()) {
        OracleFailure("stats_invariant",
                      absl::StrCat("pool '", pool->name(), "' mid-run: allocated ", stats.allocated,
                                   ", used ", stats.used, ", free ", stats.free, ", max_objects ",
                                   pool->max_objects(), "; ", Where(thread)));
      }
      return;
    }
    case OpKind::kReleaseCaches:
      ReleaseThreadCaches();
      return;
    case OpKind::kExitThread:
      return;  // The executor ends the OS thread.
    case OpKind::kFork:
      // One fork per run: a fork costs milliseconds (copying a sanitized
      // process's page tables), and a second one in the same run reaches
      // nothing the first could not.
      if (!forked_.exchange(true, std::memory_order_relaxed)) Fork(thread);
      return;
    case OpKind::kRecyclePool:
      RecyclePool(thread, op.arg % kSharedPools);
      return;
    case OpKind::kDumpPools: {
      const std::string dump = DumpPools(op.arg % 2 ? DumpFormat::kJson : DumpFormat::kText);
      if (dump.empty()) OracleFailure("dump", "DumpPools() returned nothing; " + Where(thread));
      return;
    }
    case OpKind::kLimitBytes:
      // Lifted by FinishRun(); refusals under it are allowed (refused_alloc).
      SetProcessByteLimit(SystemBytesInUse() + size_t{op.arg} * 4096);
      return;
    case OpKind::kFailMembarrier:
      // Fails until the run ends or an op with arg 1 (nothing to do when
      // POOLGUARD_FAIL_MEMBARRIER fails it for the whole process). Working
      // again mid-run, tlcache leaves fenced mode at its next bind or drain
      // (heavy_barrier.h) while the other threads may be binding and
      // draining: that way back is code too.
      if (std::getenv("POOLGUARD_FAIL_MEMBARRIER") != nullptr) return;
      failed_membarrier_.store(true, std::memory_order_relaxed);
      SetSystemCallFailure(SystemCall::kMembarrier, op.arg == 0 ? EPERM : 0, 1);
      return;
    case OpKind::kNumKinds:
      break;
  }
  OracleFailure("bad_op", absl::StrCat("op kind ", static_cast<int>(op.kind)));
}

void World::Fork(size_t thread) {
  std::fflush(nullptr);  // Nothing buffered is written twice.
  const pid_t pid = fork();
  if (pid < 0) return;  // No process to be had: nothing to test.
  // In the child only this thread exists (an executor that schedules
  // threads stops doing so there: fuzz/scheduled.cc), and _exit() skips the
  // parent's atexit handlers (libFuzzer's, LeakSanitizer's).
  if (pid == 0) {
    const int status = ForkChild(thread);
    WriteCoverageProfile();
    _exit(status);
  }
  const auto deadline = std::chrono::steady_clock::now() + kForkChildTimeLimit;
  int status = 0;
  pid_t done;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    OracleFailure("fork_hang",
                  absl::StrCat("the child of a fork by thread ", thread,
                               " did not finish its checks in ", kForkChildTimeLimit.count(),
                               " s (a lock, claim or cache window it inherited was never "
                               "released?); ",
                               Where(thread)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    OracleFailure(
        "fork_crash",
        absl::StrCat("the child of a fork by thread ", thread, " ",
                     WIFSIGNALED(status) ? absl::StrCat("died of signal ", WTERMSIG(status))
                                         : absl::StrCat("failed check ", WEXITSTATUS(status)),
                     " (its report is above); ", Where(thread)));
  }
}

int World::ForkChild(size_t thread) {
  // Only this thread exists now. Every pool it can reach must satisfy the
  // invariants, be usable, flush to exactly what is in use, and be
  // destroyed.
  // (Fixed arrays: the child allocates nothing but what the pools ask the
  // system for.)
  std::array<Pool*, kSharedPools + kPrivatePools> pool_array{};
  size_t pool_count = 0;
  // (A shared pool that a paused thread was recycling at the fork is left
  // alone: its Pool object may be half built or half destroyed.)
  const uint32_t recycling = recycling_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kSharedPools; ++i) {
    if ((recycling & (uint32_t{1} << i)) == 0) pool_array[pool_count++] = SharedPool(i);
  }
  for (const auto& pool : threads_[thread].private_pools) {
    if (pool != nullptr) pool_array[pool_count++] = pool.get();
  }
  const absl::Span<Pool* const> pools(pool_array.data(), pool_count);
  auto broken = [](const Pool& pool, const PoolStats& stats, const char* when) {
    ChildSays(
        "poolguard fork child: pool '%s' %s: allocated %zu, used %zu, free %zu, "
        "max_objects %zu\n",
        pool.name().c_str(), when, stats.allocated, stats.used, stats.free, pool.max_objects());
  };
  for (Pool* pool : pools) {
    const PoolStats stats = pool->Stats();
    if (stats.allocated != stats.used + stats.free || stats.allocated > pool->max_objects()) {
      broken(*pool, stats, "as inherited");
      return 10;
    }
  }
  // Use each: allocate, fill, check, free; `used` comes back exactly.
  for (Pool* pool : pools) {
    const PoolStats before = pool->Stats();
    std::array<unsigned char*, 3> objects{};
    size_t allocated = 0;
    for (size_t i = 0; i < objects.size(); ++i) {
      auto* object = static_cast<unsigned char*>(pool->Alloc());
      if (object == nullptr) break;  // A limit (or injected failure): allowed.
      std::memset(object, 0xc5 + i, std::min<size_t>(pool->object_size(), 4096));
      objects[allocated++] = object;
    }
    const PoolStats during = pool->Stats();
    if (during.used != before.used + allocated) {
      broken(*pool, during, "after the child's allocations");
      return 11;
    }
    for (size_t i = 0; i < allocated; ++i) {
      for (size_t b = 0; b < std::min<size_t>(pool->object_size(), 4096); ++b) {
        if (objects[i][b] != static_cast<unsigned char>(0xc5 + i)) {
          ChildSays("poolguard fork child: pool '%s' handed object %p to two owners\n",
                    pool->name().c_str(), static_cast<void*>(objects[i]));
          return 12;
        }
      }
      pool->Free(objects[i]);
    }
    if (pool->Stats().used != before.used) {
      broken(*pool, pool->Stats(), "after the child freed what it allocated");
      return 13;
    }
  }
  // Flushed, a pool holds exactly what is in use: every free object went,
  // also those the other threads' caches held.
  for (Pool* pool : pools) {
    pool->Flush();
    const PoolStats stats = pool->Stats();
    if (stats.free != 0 || stats.allocated != stats.used) {
      broken(*pool, stats, "after a flush");
      return 14;
    }
  }
  GcAll();
  // This thread's private pools with nothing in use are destroyed.
  for (auto& pool : threads_[thread].private_pools) {
    if (pool != nullptr && pool->Stats().used == 0) pool.reset();
  }
  return 0;
}

void World::FinishThread(size_t thread) {
  ThreadState& state = threads_[thread];
  // The shared pools this thread holds objects of. A recycler leaves those
  // alone: the wait is only for one that is still looking (never in
  // scheduled runs, where looking passes no schedule point).
  uint32_t mask = 0;
  for (size_t i = 0; i < kSharedPools; ++i) {
    if (state.held_per_pool[i].load(std::memory_order_relaxed) != 0) mask |= uint32_t{1} << i;
  }
  while (!UseShared(thread, mask)) sched_yield();
  // Its frees count as an op (op_counts_): no other op may take itself to
  // have run alone beside them.
  {
    const OpInFlight in_flight(*this);
    while (!state.held.empty()) FreeHeld(thread, state.held.size() - 1, "at thread exit");
  }
  DoneWithShared(thread);
  // Private pools stay until FinishRun(): other threads' GcAll() may still be
  // working on them, so their stats are checked only once all is quiet.
}

void World::CheckQuiescent(size_t checker) const {
  for (size_t i = 0; i < kSharedPools; ++i) {
    size_t failed = 0;
    for (const ThreadState& state : threads_) {
      failed += state.failed_per_pool[i].load(std::memory_order_relaxed);
    }
    CheckPool(*SharedPool(i), HeldOf(0, i), failed, checker == kAllThreads ? 0 : checker);
  }
  for (size_t t = 0; t < threads_.size(); ++t) {
    if (checker != kAllThreads && checker != t) continue;
    const ThreadState& state = threads_[t];
    for (size_t slot = 0; slot < kPrivatePools; ++slot) {
      const Pool* pool = state.private_pool_view[slot].load(std::memory_order_relaxed);
      if (pool != nullptr) {
        CheckPool(*pool, state.held_per_pool[kSharedPools + slot].load(std::memory_order_relaxed),
                  state.failed_per_pool[kSharedPools + slot].load(std::memory_order_relaxed), t);
      }
    }
  }
}

void World::FinishRun() {
  finished_ = true;
  // The threads are done: lift the run's conditions (nothing below allocates
  // from the system).
  ClearSystemAllocFailures();
  SetProcessByteLimit(0);
  // What is left in mailboxes goes back (after its stamp is checked).
  for (Mailbox& mailbox : mailboxes_) {
    if (mailbox.state.load(std::memory_order_acquire) != kFull) continue;
    CheckStamp(0, mailbox.item, "left in a mailbox");
    mailbox.item.pool->Free(mailbox.item.object);
    in_mailboxes_[mailbox.pool_index].fetch_sub(1, std::memory_order_relaxed);
    mailbox.state.store(kEmpty, std::memory_order_relaxed);
  }
  // Whatever this thread's caches hold goes back too: the stats below are
  // then exact whatever the backend's stats semantics.
  ReleaseThreadCaches();
  CheckQuiescent(kAllThreads);
  for (const ThreadState& thread : threads_) {
    for (const auto& pool : thread.private_pools) {
      if (pool != nullptr) CheckFreeReachable(*pool);
    }
  }
  for (const auto& pool : shared_pools_) CheckFreeReachable(*pool);
  // The gc contract, at a quiescent point: GcAll() trims every pool down to
  // its min_free free objects (pool/pool.h), wherever the backend keeps
  // them (a thread cache, a transfer cache, its list), and no further: a
  // pool that had more keeps exactly min_free, one that had fewer keeps
  // what it had.
  std::vector<std::pair<const Pool*, size_t>> free_before;
  auto note_free = [&free_before](const Pool& pool) {
    free_before.emplace_back(&pool, pool.Stats().free);
  };
  for (const ThreadState& thread : threads_) {
    for (const auto& pool : thread.private_pools) {
      if (pool != nullptr) note_free(*pool);
    }
  }
  for (const auto& pool : shared_pools_) note_free(*pool);
  GcAll();
  for (const auto& [pool, before] : free_before) {
    const PoolStats stats = pool->Stats();
    const size_t expected = std::min(before, pool->min_free());
    if (stats.free != expected) {
      OracleFailure("gc_contract",
                    absl::StrCat("pool '", pool->name(), "' after the run and GcAll(): free ",
                                 stats.free, ", expected ", expected, " (free before ", before,
                                 ", min_free ", pool->min_free(), "; allocated ", stats.allocated,
                                 ", used ", stats.used, "); ", Where(0)));
    }
  }
  auto check_empty = [this](Pool& pool, std::string_view when) {
    const PoolStats stats = pool.Stats();
    if (stats.allocated != 0 || stats.used != 0 || stats.free != 0) {
      OracleFailure("stats_invariant",
                    absl::StrCat("pool '", pool.name(), "' ", when, ": allocated ", stats.allocated,
                                 ", used ", stats.used, ", free ", stats.free, "; expected all 0; ",
                                 Where(0)));
    }
  };
  for (size_t t = 0; t < threads_.size(); ++t) {
    for (size_t slot = 0; slot < kPrivatePools; ++slot) {
      Pool* pool = threads_[t].private_pools[slot].get();
      if (pool == nullptr) continue;
      pool->Flush();
      check_empty(*pool, "after the run and a flush");
      SetPrivatePool(t, slot, nullptr);
    }
  }
  for (const auto& pool : shared_pools_) {
    pool->Flush();
    check_empty(*pool, "after the run and a flush");
  }
  // membarrier() works again, last: the checks above ran in the mode the run
  // left (fenced, if it failed), and tlcache's next bind or drain, in the
  // next run, goes back to unfenced windows (heavy_barrier.h) while that
  // run's threads bind and drain, so the next run starts as this one did.
  if (failed_membarrier_.load(std::memory_order_relaxed)) {
    SetSystemCallFailure(SystemCall::kMembarrier, 0);
  }
}

bool KeyDestructorRoundDue(pthread_key_t key, void* value, int& rounds_to_wait) {
  if (rounds_to_wait == 0) return true;
  --rounds_to_wait;
  pthread_setspecific(key, value);  // Once more, next round.
  return false;
}

void RunDestructorOps(bool last_round, absl::FunctionRef<void()> ops) {
  const bool first_calls = !tl_called_alloc_or_free;
  ops();
  if (last_round && first_calls && tl_called_alloc_or_free) ReleaseThreadCaches();
}

}  // namespace poolguard::fuzz
