// The system memory layer (pool/system_memory.h): every block a pool obtains
// from or gives back to the system, with failure injection
// (failure_injection.cc), the byte limit (limits.cc), debug mode's block set,
// and the gate that fork() closes.

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

namespace poolguard::internal {
namespace {

// The fork gate. A request (one malloc or free of ours) counts itself in
// g_requests_in_flight, then checks g_fork_pending; CloseSystemForFork() sets
// g_fork_pending, then waits for the count to reach zero. seq_cst on both
// sides (a Dekker pattern): either the forker sees the request counted, or
// the request sees the fork pending and backs out.
ABSL_CONST_INIT std::atomic<uint32_t> g_requests_in_flight{0};
ABSL_CONST_INIT std::atomic<bool> g_fork_pending{false};
// The forking thread passes its own gate (the fork handlers of the child
// free the caches of threads that are gone).
ABSL_CONST_INIT thread_local bool t_forking = false;

// One request's pass through the gate. Held only around the system's own
// allocator: never around GcAll(), which takes locks the forker holds.
class GateGuard {
 public:
  GateGuard() {
    for (;;) {
      g_requests_in_flight.fetch_add(1, std::memory_order_seq_cst);
      if (ABSL_PREDICT_TRUE(!g_fork_pending.load(std::memory_order_seq_cst)) || t_forking) {
        return;
      }
      g_requests_in_flight.fetch_sub(1, std::memory_order_seq_cst);
      Backoff backoff;
      // relaxed: a hint; the seq_cst load above decides.
      while (g_fork_pending.load(std::memory_order_relaxed)) backoff.Wait();
    }
  }
  ~GateGuard() {
    // release: the request's memory effects happen before the fork.
    g_requests_in_flight.fetch_sub(1, std::memory_order_release);
  }
  GateGuard(const GateGuard&) = delete;
  GateGuard& operator=(const GateGuard&) = delete;
};

#if defined(POOLGUARD_DEBUG)
// The blocks held from the system (debug builds): block -> its mapping (UAF
// mode) or nothing. Never destroyed: pools may outlive static destructors.
struct Mapping {
  void* start = nullptr;
  size_t length = 0;
};
ABSL_CONST_INIT SpinLock g_blocks_lock;
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
  SpinLockHolder holder(&g_blocks_lock);
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
    SpinLockHolder holder(&g_blocks_lock);
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
    SpinLockHolder holder(&g_blocks_lock);
    auto it = Blocks().find(block);
    if (it != Blocks().end()) {
      mapping = it->second;
      Blocks().erase(it);
    }
    // Scrub under the lock: a WithLiveSystemBlock() reader never sees a
    // block half scrubbed. The block may be poisoned as a free object.
#if defined(POOLGUARD_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(block, size < kScrubOnRelease ? size : kScrubOnRelease);
#endif
    std::memset(block, 0, size < kScrubOnRelease ? size : kScrubOnRelease);
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

void* AllocateFromSystem(size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kAllocateSystem);
  // Over the limit, or no memory: make room with GcAll() once (outside the
  // gate: it takes locks the forker holds), then retry.
  for (bool reclaimed = false;; reclaimed = true) {
    {
      GateGuard gate;
      // An injected failure stands for "the system refused, even after a gc".
      if (ShouldInjectFailure(size)) return nullptr;
      if (ReserveSystemBytes(size)) {
        if (void* block = RawAllocate(size, alignment)) return block;
        UnreserveSystemBytes(size);
      }
    }
    if (reclaimed || !GcAllPools()) return nullptr;
  }
}

void ReleaseToSystem(void* block, size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kReleaseSystem);
  GateGuard gate;
  RawRelease(block, size);
  UnreserveSystemBytes(size);
}

void CloseSystemForFork() {
  t_forking = true;
  g_fork_pending.store(true, std::memory_order_seq_cst);
  Backoff backoff;
  while (g_requests_in_flight.load(std::memory_order_seq_cst) != 0) backoff.Wait();
}

void OpenSystemAfterFork() {
  // release: what the fork handlers did happens before the requests that
  // waited at the gate.
  g_fork_pending.store(false, std::memory_order_release);
  t_forking = false;
}

void LockSystemLeavesForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  LockInjectionForFork();
#if defined(POOLGUARD_DEBUG)
  g_blocks_lock.Lock();
#endif
}

void UnlockSystemLeavesAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
#if defined(POOLGUARD_DEBUG)
  g_blocks_lock.Unlock();
#endif
  UnlockInjectionAfterFork();
}

#if defined(POOLGUARD_DEBUG)
bool WithLiveSystemBlock(const void* block, absl::FunctionRef<void()> fn) {
  SpinLockHolder holder(&g_blocks_lock);
  if (Blocks().count(block) == 0) return false;
  fn();
  return true;
}
#endif

}  // namespace poolguard::internal
