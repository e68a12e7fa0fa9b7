#include "pool/system_memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(POOLGUARD_DEBUG)
#include <unordered_map>
#endif
#if defined(POOLGUARD_UAF)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "pool/failure_injection.h"
#include "pool/limits.h"
#include "pool/sched_point.h"
#include "pool/spinlock.h"

namespace poolguard {
namespace {

// Whether any injection is set: the only thing the allocation path reads when
// none is. relaxed: a hint, re-checked under g_injection_lock.
ABSL_CONST_INIT std::atomic<bool> g_injection_active{false};
ABSL_CONST_INIT std::atomic<uint64_t> g_injected_failures{0};

ABSL_CONST_INIT internal::SpinLock g_injection_lock;
struct InjectionState {
  SystemAllocFailures policy;
  uint64_t requests = 0;
  size_t bytes = 0;
  uint64_t rng = 1;
  bool fail_next = false;
};
ABSL_CONST_INIT InjectionState g_injection ABSL_GUARDED_BY(g_injection_lock);

bool Active(const InjectionState& state) {
  return state.fail_next || state.policy.every_nth != 0 || state.policy.probability > 0 ||
         state.policy.after_bytes != 0;
}

// Decides whether this request fails, and counts it.
bool ShouldFail(size_t size) {
  internal::SpinLockHolder holder(&g_injection_lock);
  InjectionState& state = g_injection;
  bool fail = false;
  if (state.fail_next) {
    state.fail_next = false;
    fail = true;
  }
  ++state.requests;
  if (state.policy.every_nth != 0 && state.requests % state.policy.every_nth == 0) fail = true;
  if (state.policy.probability > 0) {
    // splitmix64: the same sequence for the same seed on every platform.
    uint64_t z = (state.rng += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    z ^= z >> 31;
    if (static_cast<double>(z >> 11) * 0x1.0p-53 < state.policy.probability) fail = true;
  }
  if (state.policy.after_bytes != 0 && state.bytes + size > state.policy.after_bytes) {
    fail = true;
  }
  if (!fail) state.bytes += size;
  g_injection_active.store(Active(state), std::memory_order_relaxed);
  if (fail) g_injected_failures.fetch_add(1, std::memory_order_relaxed);
  return fail;
}

}  // namespace

void SetSystemAllocFailures(const SystemAllocFailures& failures) {
  internal::SpinLockHolder holder(&g_injection_lock);
  const bool fail_next = g_injection.fail_next;
  g_injection = InjectionState{};
  g_injection.policy = failures;
  g_injection.rng = failures.seed;
  g_injection.fail_next = fail_next;
  g_injection_active.store(Active(g_injection), std::memory_order_relaxed);
}

void ClearSystemAllocFailures() {
  internal::SpinLockHolder holder(&g_injection_lock);
  g_injection = InjectionState{};
  g_injection_active.store(false, std::memory_order_relaxed);
}

void FailNextSystemAllocation() {
  internal::SpinLockHolder holder(&g_injection_lock);
  g_injection.fail_next = true;
  g_injection_active.store(true, std::memory_order_relaxed);
}

uint64_t InjectedSystemAllocFailures() {
  return g_injected_failures.load(std::memory_order_relaxed);
}

namespace {

// Bytes held from the system, and the limit (0: none). relaxed: counters;
// a request reserves its bytes with a CAS before it asks the system, so the
// total never exceeds the limit.
ABSL_CONST_INIT std::atomic<size_t> g_bytes_in_use{0};
ABSL_CONST_INIT std::atomic<size_t> g_byte_limit{0};
ABSL_CONST_INIT std::atomic<void (*)()> g_reclaim{nullptr};
// Set while this thread runs the reclaim hook: a request it makes meanwhile
// fails instead of reclaiming again.
ABSL_CONST_INIT thread_local bool t_reclaiming = false;

bool ReserveBytes(size_t size) {
  size_t in_use = g_bytes_in_use.load(std::memory_order_relaxed);
  for (;;) {
    const size_t limit = g_byte_limit.load(std::memory_order_relaxed);
    if (limit != 0 && (in_use > limit || size > limit - in_use)) return false;
    if (g_bytes_in_use.compare_exchange_weak(in_use, in_use + size, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void UnreserveBytes(size_t size) { g_bytes_in_use.fetch_sub(size, std::memory_order_relaxed); }

// Runs the reclaim hook (GcAll()) once; false if there is none or this thread
// is already inside it.
bool Reclaim() {
  void (*reclaim)() = g_reclaim.load(std::memory_order_acquire);
  if (reclaim == nullptr || t_reclaiming) return false;
  t_reclaiming = true;
  reclaim();
  t_reclaiming = false;
  return true;
}

#if defined(POOLGUARD_DEBUG)
// The blocks held from the system (debug builds): block -> its mapping (UAF
// mode) or nothing. Never destroyed: pools may outlive static destructors.
struct Mapping {
  void* start = nullptr;
  size_t length = 0;
};
ABSL_CONST_INIT internal::SpinLock g_blocks_lock;
std::unordered_map<const void*, Mapping>& Blocks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_blocks_lock) {
  static auto* blocks = new std::unordered_map<const void*, Mapping>;
  return *blocks;
}
#endif

// The system's allocator itself.
void* RawAllocate(size_t size, size_t alignment) {
#if defined(POOLGUARD_UAF)
  // Pages of its own for every block, the block at their end (an overrun of
  // the last object faults too); one extra alignment for larger alignments.
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t extra = alignment > page ? alignment : 0;
  const size_t length = (size + extra + page - 1) / page * page;
  void* start = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (start == MAP_FAILED) return nullptr;
  const uintptr_t end = reinterpret_cast<uintptr_t>(start) + length;
  void* block = reinterpret_cast<void*>((end - size) & ~(uintptr_t{alignment} - 1));
  internal::SpinLockHolder holder(&g_blocks_lock);
  Blocks()[block] = Mapping{start, length};
  return block;
#else
  // malloc already aligns to alignof(max_align_t); only larger alignments need
  // aligned_alloc, which requires size to be a multiple of the alignment
  // (PoolLayout::slot_size is).
  void* block = alignment <= alignof(std::max_align_t) ? std::malloc(size)
                                                       : std::aligned_alloc(alignment, size);
#if defined(POOLGUARD_DEBUG)
  if (block != nullptr) {
    internal::SpinLockHolder holder(&g_blocks_lock);
    Blocks()[block] = Mapping{};
  }
#endif
  return block;
#endif
}

void RawRelease(void* block, size_t size) {
#if defined(POOLGUARD_DEBUG)
  Mapping mapping;
  {
    internal::SpinLockHolder holder(&g_blocks_lock);
    auto it = Blocks().find(block);
    if (it != Blocks().end()) {
      mapping = it->second;
      Blocks().erase(it);
    }
    // Scrub under the lock: a WithLiveSystemBlock() reader never sees a
    // block half scrubbed. The block may be poisoned as a free object.
#if defined(POOLGUARD_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(
        block, size < internal::kScrubOnRelease ? size : internal::kScrubOnRelease);
#endif
    std::memset(block, 0, size < internal::kScrubOnRelease ? size : internal::kScrubOnRelease);
  }
#if defined(POOLGUARD_UAF)
  munmap(mapping.start, mapping.length);
  return;
#endif
#endif
  // The block may still be poisoned as a free-list object; free() accepts
  // that and ASan marks the whole block as freed.
  std::free(block);
}

}  // namespace

void SetProcessByteLimit(size_t bytes) { g_byte_limit.store(bytes, std::memory_order_relaxed); }

size_t ProcessByteLimit() { return g_byte_limit.load(std::memory_order_relaxed); }

size_t SystemBytesInUse() { return g_bytes_in_use.load(std::memory_order_relaxed); }

namespace internal {

void SetSystemReclaimHook(void (*reclaim)()) {
  g_reclaim.store(reclaim, std::memory_order_release);
}

void* AllocateFromSystem(size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kAllocateSystem);
  // An injected failure stands for "the system refused, even after a gc".
  if (ABSL_PREDICT_FALSE(g_injection_active.load(std::memory_order_relaxed)) && ShouldFail(size)) {
    return nullptr;
  }
  // Over the limit, or no memory: make room with GcAll() once, then retry.
  for (bool reclaimed = false;; reclaimed = true) {
    if (ReserveBytes(size)) {
      if (void* block = RawAllocate(size, alignment)) return block;
      UnreserveBytes(size);
    }
    if (reclaimed || !Reclaim()) return nullptr;
  }
}

void ReleaseToSystem(void* block, size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kReleaseSystem);
  RawRelease(block, size);
  UnreserveBytes(size);
}

#if defined(POOLGUARD_DEBUG)
bool WithLiveSystemBlock(const void* block, absl::FunctionRef<void()> fn) {
  internal::SpinLockHolder holder(&g_blocks_lock);
  if (Blocks().count(block) == 0) return false;
  fn();
  return true;
}
#endif

}  // namespace internal
}  // namespace poolguard
