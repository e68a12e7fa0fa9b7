#include "fuzz/interpreter.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace poolguard::fuzz {
namespace {

std::unique_ptr<Pool> MustCreate(const PoolOptions& options) {
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  if (!pool.ok()) {
    OracleFailure("create_failed", std::string(pool.status().message()));
  }
  return *std::move(pool);
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

void OracleFailure(std::string_view oracle, const std::string& message) {
  std::fprintf(stderr, "poolguard oracle failure [%.*s]: %s\n",
               static_cast<int>(oracle.size()), oracle.data(), message.c_str());
  std::fflush(stderr);
  std::abort();
}

World::World(const Program& program)
    : program_(program), threads_(program.threads.size()) {
  PoolOptions small;
  small.name = "shared-small";
  small.object_size = 24;
  small.min_free = 2;
  shared_pools_[0] = MustCreate(small);
  PoolOptions limited;
  limited.name = "shared-limited";
  limited.object_size = 64;
  limited.alignment = 64;
  limited.max_objects = 6;
  shared_pools_[1] = MustCreate(limited);
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
      OracleFailure(
          "double_owner",
          absl::StrCat("object ", absl::Hex(reinterpret_cast<uintptr_t>(held.object)),
                       " of pool '", held.pool->name(), "' held by thread ", thread,
                       " changed under its owner (byte ", i, " is ",
                       held.object[i], ", stamp byte ", expected, ") ", when, "; ",
                       Where(thread)));
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
        state.private_pools[slot] =
            MustCreate(PrivatePoolOptions(thread, slot, op.arg / kPrivatePools));
      }
      return;
    }
    case OpKind::kDestroyPool: {
      std::unique_ptr<Pool>& pool = state.private_pools[op.arg % kPrivatePools];
      if (pool == nullptr) return;
      for (const Held& held : state.held) {
        if (held.pool == pool.get()) return;  // Only empty pools are destroyed.
      }
      pool.reset();
      return;
    }
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
  }
  // Private pools stay until FinishRun(): other threads' GcAll() may still be
  // working on them, so their stats are checked only once all is quiet.
}

void World::CheckQuiescent() const {
  auto check = [&](const Pool& pool) {
    size_t held = 0;
    for (const ThreadState& state : threads_) {
      for (const Held& h : state.held) held += h.pool == &pool;
    }
    const PoolStats stats = pool.Stats();
    if (stats.allocated != stats.used + stats.free || stats.used != held) {
      OracleFailure("stats_invariant",
                    absl::StrCat("pool '", pool.name(), "': allocated ", stats.allocated,
                                 ", used ", stats.used, ", free ", stats.free,
                                 ", held by the threads ", held,
                                 "; expected allocated == used + free and used == held; ",
                                 Where(0)));
    }
  };
  for (const auto& pool : shared_pools_) check(*pool);
  for (const ThreadState& state : threads_) {
    for (const auto& pool : state.private_pools) {
      if (pool != nullptr) check(*pool);
    }
  }
}

void World::FinishRun() {
  finished_ = true;
  CheckQuiescent();
  auto check_empty = [this](Pool& pool, std::string_view when) {
    const PoolStats stats = pool.Stats();
    if (stats.allocated != 0 || stats.used != 0 || stats.free != 0) {
      OracleFailure("stats_invariant",
                    absl::StrCat("pool '", pool.name(), "' ", when, ": allocated ",
                                 stats.allocated, ", used ", stats.used, ", free ",
                                 stats.free, "; expected all 0; ", Where(0)));
    }
  };
  for (ThreadState& state : threads_) {
    for (std::unique_ptr<Pool>& pool : state.private_pools) {
      if (pool == nullptr) continue;
      pool->Flush();
      check_empty(*pool, "after the run and a flush");
      pool.reset();
    }
  }
  for (const auto& pool : shared_pools_) {
    pool->Flush();
    check_empty(*pool, "after the run and a flush");
  }
}

}  // namespace poolguard::fuzz
