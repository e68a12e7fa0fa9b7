#include "pool/pool.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "pool/debug_internal.h"
#include "pool/limits.h"
#include "pool/registry.h"
#include "pool/system_memory.h"

namespace poolguard {
namespace {

bool IsPowerOfTwo(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

absl::Status Invalid(const PoolOptions& options, std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("pool '", options.name, "': PoolOptions.", message));
}

absl::StatusOr<internal::PoolLayout> MakeLayout(const PoolOptions& options) {
  if (options.object_size == 0) {
    return Invalid(options, "object_size must be > 0");
  }
  if (options.object_size > Pool::kMaxObjectSize) {
    return Invalid(options,
                   absl::StrCat("object_size ", options.object_size, " exceeds the maximum of ",
                                Pool::kMaxObjectSize, " (Pool::kMaxObjectSize)"));
  }
  if (!IsPowerOfTwo(options.alignment)) {
    return Invalid(options,
                   absl::StrCat("alignment must be a power of two, not ", options.alignment));
  }
  if (options.alignment > Pool::kMaxAlignment) {
    return Invalid(options,
                   absl::StrCat("alignment ", options.alignment, " exceeds the maximum of ",
                                Pool::kMaxAlignment, " (Pool::kMaxAlignment)"));
  }
  internal::PoolLayout layout;
  layout.name = options.name;
  layout.object_size = options.object_size;
#if defined(POOLGUARD_MUTANT_TINY_SLOT_NO_ROOM_FOR_LINK)
  // SEEDED BUG (fuzz/mutants/README.md): the slot is sized and aligned for
  // the object alone, so a free object smaller than a pointer has no room
  // for the link the free lists keep in its first word.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  layout.alignment = options.alignment;
  const size_t size = options.object_size;
#else
  // A free object keeps its link in its first word.
  layout.alignment = std::max(options.alignment, alignof(void*));
  const size_t size = std::max(options.object_size, sizeof(void*));
#endif
  // No overflow, and at most kMaxObjectSize: size <= kMaxObjectSize, which
  // is a multiple of every alignment up to kMaxAlignment.
  static_assert(Pool::kMaxObjectSize % Pool::kMaxAlignment == 0);
  layout.slot_size = (size + layout.alignment - 1) & ~(layout.alignment - 1);
#if defined(POOLGUARD_DEBUG)
  // The debug header goes before the object (pool/debug_internal.h). No
  // overflow: both are far below SIZE_MAX.
  layout.slot_size += internal::DebugHeaderSize(layout.alignment);
#endif
  constexpr size_t kBackendMax = internal::Backend::kMaxObjects;
  if (options.max_objects > kBackendMax) {
    return Invalid(options,
                   absl::StrCat("max_objects ", options.max_objects, " exceeds the ",
                                internal::Backend::kName, " backend's limit of ", kBackendMax));
  }
  layout.max_objects = options.max_objects == 0 ? kBackendMax : options.max_objects;
  layout.min_free = options.min_free;
  return layout;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options) {
  absl::StatusOr<internal::PoolLayout> layout = MakeLayout(options);
  if (!layout.ok()) return layout.status();
  // Not make_unique: the constructor is private, and the memory may be refused.
  std::unique_ptr<Pool> pool(new (std::nothrow) Pool(*std::move(layout)));
  if (pool == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pool '", options.name, "': no memory for the pool itself"));
  }
  internal::Registry::Add(pool.get());
  // The system memory layer runs GcAll() before it refuses a request.
  internal::SetSystemReclaimHook(&GcAll);
  return pool;
}

void* Pool::operator new(size_t size, const std::nothrow_t&) noexcept {
  return internal::AllocateFromSystem(size, alignof(Pool));
}

void Pool::operator delete(void* pool, size_t size) noexcept {
  internal::ReleaseToSystem(pool, size, alignof(Pool));
}

void Pool::operator delete(void* pool, const std::nothrow_t&) noexcept {
  internal::ReleaseToSystem(pool, sizeof(Pool), alignof(Pool));
}

Pool::Pool(internal::PoolLayout layout) : layout_(std::move(layout)), backend_(layout_) {}

Pool::~Pool() {
  // Leave the registry first: it waits for a GcAll() that walks this pool, and
  // none can start on it afterwards.
  internal::Registry::Remove(this);
#ifndef NDEBUG
  const PoolStats stats = backend_.Stats();
  if (stats.used != 0) {
    std::fprintf(stderr,
                 "poolguard: pool '%s' destroyed with %zu object(s) still in "
                 "use (allocated %zu, free %zu)\n",
                 layout_.name.c_str(), stats.used, stats.allocated, stats.free);
    std::abort();
  }
#endif
  // backend_'s destructor releases the free objects.
}

void GcAll() {
  internal::Registry::ForEach([](Pool* pool) { pool->backend_.Gc(); });
}

void ReleaseThreadCaches() { internal::ReleaseThreadCachesOf<internal::Backend>(); }

std::string_view BackendName() { return internal::Backend::kName; }

}  // namespace poolguard
