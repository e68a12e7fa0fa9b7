#include "fuzz/interpreter.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "pool/failure_injection.h"

namespace poolguard::fuzz {
namespace {

// Creates a pool; nullptr when the system has no memory for it (an injected
// failure), which the ops treat as "no such pool". Any other error is a bug.
std::unique_ptr<Pool> CreateOrNull(const PoolOptions& options) {
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (pool.ok()) return *std::move(pool);
  if (pool.status().code() == absl::StatusCode::kResourceExhausted) return nullptr;
  OracleFailure("create_failed", std::string(pool.status().message()));
}

// Shapes of private pools, chosen by the create op's argument.
PoolOptions PrivatePoolOptions(size_t thread, size_t slot, uint8_t arg) {
  static constexpr size_t kSizes[] = {8, 16, 40, 128};
  static constexpr size_t kMinFree[] = {0, 1, 4};
  static constexpr size_t kMaxObjects[] = {0, 0, 3};
  PoolOptions options;
  options.name = absl::StrCat("private-t", thread, "-", slot);
  options.object_size = kSizes[arg % 4];
  options.min_free = kMinFree[(arg / 4) % 3];
  options.max_objects = kMaxObjects[(arg / 12) % 3];
  return options;
}

}  // namespace

namespace {
// Written before the controlled threads start, read when one fails.
std::string& FailureContext() {
  static auto* context = new std::string;
  return *context;
}
}  // namespace

void SetFailureContext(std::string context) { FailureContext() = std::move(context); }

namespace {
RunConditions ConditionsFromEnvironment() {
  RunConditions conditions;
  if (const char* every_nth = std::getenv("POOLGUARD_FAIL_EVERY_NTH")) {
    conditions.failures.every_nth = std::strtoull(every_nth, nullptr, 10);
    // Said once, so that a log shows the run had injection on.
    std::fprintf(stderr, "poolguard: failure injection on, POOLGUARD_FAIL_EVERY_NTH=%llu\n",
                 static_cast<unsigned long long>(conditions.failures.every_nth));
  }
  return conditions;
}

// Written before the threads start (SetRunConditions), read by World's
// constructor on the thread that makes it.
RunConditions& Conditions() {
  static auto* conditions = new RunConditions(ConditionsFromEnvironment());
  return *conditions;
}
}  // namespace

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
  PoolOptions small;
  small.name = "shared-small";
  small.object_size = 24;
  small.min_free = 2;
  shared_pools_[0] = CreateOrNull(small);
  PoolOptions limited;
  limited.name = "shared-limited";
  limited.object_size = 64;
  limited.alignment = 64;
  limited.max_objects = 6;
  shared_pools_[1] = CreateOrNull(limited);
  if (shared_pools_[0] == nullptr || shared_pools_[1] == nullptr) {
    OracleFailure("create_failed", "no memory for the shared pools");
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
  if (index < kSharedPools) return shared_pools_[index].get();
  return threads_[thread].private_pools[index - kSharedPools].get();
}

size_t World::PoolIndex(size_t thread, const Pool* pool) const {
  for (size_t i = 0; i < kSharedPools; ++i) {
    if (shared_pools_[i].get() == pool) return i;
  }
  for (size_t i = 0; i < kPrivatePools; ++i) {
    if (threads_[thread].private_pools[i].get() == pool) return kSharedPools + i;
  }
  OracleFailure("harness", "held object of an unknown pool");
}

void World::SetPrivatePool(size_t thread, size_t slot, std::unique_ptr<Pool> pool) {
  ThreadState& state = threads_[thread];
  state.private_pool_view[slot].store(pool.get(), std::memory_order_relaxed);
  state.private_pools[slot] = std::move(pool);
}

uint64_t World::NewStamp(size_t thread) {
  // Owner in the top byte, a per-thread serial below: unique per hand-out.
  return (uint64_t{thread + 1} << 56) | ++threads_[thread].next_serial;
}

void World::Stamp(const Held& held) const {
  const size_t size = held.pool->object_size();
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= size; i += sizeof(uint64_t)) {
    std::memcpy(held.object + i, &held.stamp, sizeof(uint64_t));
  }
  for (; i < size; ++i) held.object[i] = static_cast<unsigned char>(held.stamp);
}

void World::CheckStamp(size_t thread, const Held& held, std::string_view when) const {
  // The image Stamp() writes: whole words of the stamp, then its low byte.
  const size_t size = held.pool->object_size();
  const size_t words_end = size & ~(sizeof(uint64_t) - 1);
  unsigned char word[sizeof(uint64_t)];
  std::memcpy(word, &held.stamp, sizeof(word));
  for (size_t i = 0; i < size; ++i) {
    const unsigned char expected =
        i < words_end ? word[i % sizeof(word)] : static_cast<unsigned char>(held.stamp);
    if (held.object[i] != expected) {
      OracleFailure("double_owner",
                    absl::StrCat("object ", absl::Hex(reinterpret_cast<uintptr_t>(held.object)),
                                 " of pool '", held.pool->name(), "' held by thread ", thread,
                                 " changed under its owner (byte ", i, " is ", held.object[i],
                                 ", stamp byte ", expected, ") ", when, "; ", Where(thread)));
    }
  }
}

std::string World::Where(size_t thread) const {
  return absl::StrCat("backend ", BackendName(), ", thread ", thread, "\nprogram:\n",
                      ProgramToString(program_));
}

void World::RunOp(size_t thread, size_t index) {
  ThreadState& state = threads_[thread];
  const Op& op = program_.threads[thread][index];
  switch (op.kind) {
    case OpKind::kAlloc: {
      Pool* pool = PoolFor(thread, op.arg);
      if (pool == nullptr || state.held.size() >= kMaxHeld) return;
      void* object = pool->Alloc();
      if (object == nullptr) return;  // A limit, or no memory: both allowed.
      Held held{pool, static_cast<unsigned char*>(object), NewStamp(thread)};
      Stamp(held);
      state.held.push_back(held);
      state.held_per_pool[PoolIndex(thread, pool)].fetch_add(1, std::memory_order_relaxed);
      return;
    }
    case OpKind::kFree: {
      if (state.held.empty()) return;
      const size_t slot = op.arg % state.held.size();
      const Held held = state.held[slot];
      CheckStamp(thread, held, "before free");
      state.held[slot] = state.held.back();
      state.held.pop_back();
      held.pool->Free(held.object);
      state.held_per_pool[PoolIndex(thread, held.pool)].fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    case OpKind::kWriteStamp: {
      if (state.held.empty()) return;
      Held& held = state.held[op.arg % state.held.size()];
      CheckStamp(thread, held, "before re-stamp");
      held.stamp = NewStamp(thread);
      Stamp(held);
      return;
    }
    case OpKind::kCheckStamp: {
      if (state.held.empty()) return;
      CheckStamp(thread, state.held[op.arg % state.held.size()], "on check");
      return;
    }
    case OpKind::kFlush: {
      Pool* pool = PoolFor(thread, op.arg);
      if (pool != nullptr) pool->Flush();
      return;
    }
    case OpKind::kGcAll:
      GcAll();
      return;
    case OpKind::kCreatePool: {
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
        return;  // Only empty pools are destroyed.
      }
      SetPrivatePool(thread, slot, nullptr);
      return;
    }
    case OpKind::kFailNextSystemAlloc:
      FailNextSystemAllocation();
      return;
    case OpKind::kNumKinds:
      break;
  }
  OracleFailure("bad_op", absl::StrCat("op kind ", static_cast<int>(op.kind)));
}

void World::FinishThread(size_t thread) {
  ThreadState& state = threads_[thread];
  while (!state.held.empty()) {
    const Held held = state.held.back();
    state.held.pop_back();
    CheckStamp(thread, held, "at thread exit");
    held.pool->Free(held.object);
    state.held_per_pool[PoolIndex(thread, held.pool)].fetch_sub(1, std::memory_order_relaxed);
  }
  // Private pools stay until FinishRun(): other threads' GcAll() may still be
  // working on them, so their stats are checked only once all is quiet.
}

void World::CheckQuiescent(size_t checker) const {
  auto check = [&](const Pool& pool, size_t held) {
    const PoolStats stats = pool.Stats();
    if (stats.allocated != stats.used + stats.free || stats.used != held) {
      OracleFailure(
          "stats_invariant",
          absl::StrCat("pool '", pool.name(), "': allocated ", stats.allocated, ", used ",
                       stats.used, ", free ", stats.free, ", held by the threads ", held,
                       "; expected allocated == used + free and used == held; ", Where(0)));
    }
  };
  for (size_t i = 0; i < kSharedPools; ++i) {
    size_t held = 0;
    for (const ThreadState& state : threads_) {
      held += state.held_per_pool[i].load(std::memory_order_relaxed);
    }
    check(*shared_pools_[i], held);
  }
  for (size_t t = 0; t < threads_.size(); ++t) {
    if (checker != kAllThreads && checker != t) continue;
    const ThreadState& state = threads_[t];
    for (size_t slot = 0; slot < kPrivatePools; ++slot) {
      const Pool* pool = state.private_pool_view[slot].load(std::memory_order_relaxed);
      if (pool != nullptr) {
        check(*pool, state.held_per_pool[kSharedPools + slot].load(std::memory_order_relaxed));
      }
    }
  }
}

void World::FinishRun() {
  finished_ = true;
  // The threads are done: lift the run's conditions (nothing below allocates).
  ClearSystemAllocFailures();
  SetProcessByteLimit(0);
  CheckQuiescent(kAllThreads);
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
}

}  // namespace poolguard::fuzz
