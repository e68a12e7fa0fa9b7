#include "backends/tlcache/heavy_barrier.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "pool/failure_injection.h"
#include "pool/sched_point.h"

namespace poolguard::internal {
namespace {

enum Mode : int {
  kUnchosen = 0,
  kMembarrierMode = 1,
  kFencedMode = 2,
};

// Written only by the (serialized) first chooser and by a drainer under the
// cache registry lock; read by owners and drainers. relaxed: see
// OwnersMustFence().
ABSL_CONST_INIT std::atomic<int> g_mode{kUnchosen};
ABSL_CONST_INIT std::atomic<uint64_t> g_fallback_barriers{0};
// The error of the membarrier() call that failed, for FallbackBarrier()'s
// message.
ABSL_CONST_INIT std::atomic<int> g_last_error{0};

// membarrier(cmd), or the injected failure; returns 0 or an errno value.
int Membarrier(int cmd) {
  if (const int injected = InjectedSystemCallError(SystemCall::kMembarrier)) return injected;
  return syscall(__NR_membarrier, cmd, 0, 0) == 0 ? 0 : errno;
}

int ChooseMode() {
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (commands >= 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
      Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0) {
    return kMembarrierMode;
  }
  return kFencedMode;
}

int Mode() {
  int mode = g_mode.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE(mode == kUnchosen)) {
    // Two first callers may both query; both get the same answer, and
    // registering twice is harmless.
    mode = ChooseMode();
    int expected = kUnchosen;
    if (!g_mode.compare_exchange_strong(expected, mode, std::memory_order_relaxed)) {
      mode = expected;
    }
  }
  return mode;
}

// The fallback barrier: changing the protection of a page that is present
// in this process's page tables makes the kernel shoot down its TLB entries
// on every CPU that may hold them, that is every CPU that ran one of our
// threads since it last flushed; each receives an interrupt, a full barrier.
// A CPU that is not running one of our threads ran a context switch since,
// which is a full barrier too. Returns 0 or an errno value.
int MprotectBarrier() {
  if (const int injected = InjectedSystemCallError(SystemCall::kMprotect)) return injected;
  static void* const page = [] {
    void* p = mmap(nullptr, static_cast<size_t>(sysconf(_SC_PAGESIZE)), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }();
  if (page == nullptr) return ENOMEM;
  const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Writing the page makes it present (and its entry cached) before each
  // downgrade, so that the downgrade has something to shoot down.
  if (mprotect(page, size, PROT_READ | PROT_WRITE) != 0) return errno;
  *static_cast<volatile char*>(page) = 1;
  if (mprotect(page, size, PROT_READ) != 0) return errno;
  g_fallback_barriers.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

}  // namespace

bool OwnersMustFence() { return Mode() == kFencedMode; }

HeavyBarrierResult HeavyBarrier() {
  // seq_cst: the drainer's own side of the Dekker pattern; in fenced mode it
  // pairs with the owners' fences and is all that is needed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (Mode() == kFencedMode) return HeavyBarrierResult::kDone;
  POOLGUARD_SCHED_POINT(kFence);
  const int error = Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  if (ABSL_PREDICT_TRUE(error == 0)) return HeavyBarrierResult::kDone;
  // From now on every window must be fenced: new caches open fenced, the
  // caller marks the open ones, and the windows already open without a fence
  // are covered by FallbackBarrier(), as membarrier() would have covered
  // them.
  g_last_error.store(error, std::memory_order_relaxed);
  g_mode.store(kFencedMode, std::memory_order_relaxed);
  std::fprintf(stderr,
               "poolguard: tlcache: membarrier() failed (%s); thread caches fence every access "
               "from now on (slower, still correct)\n",
               std::strerror(error));
  return HeavyBarrierResult::kNeedsFallback;
}

void FallbackBarrier() {
  POOLGUARD_SCHED_POINT(kFence);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const int error = MprotectBarrier();
  if (error != 0) {
    std::fprintf(stderr,
                 "poolguard: tlcache: no barrier can drain thread caches safely: "
                 "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed (%s), and so did the "
                 "mprotect() fallback (%s)\n",
                 std::strerror(g_last_error.load(std::memory_order_relaxed)), std::strerror(error));
    std::abort();
  }
}

uint64_t FallbackBarriersForTesting() {
  return g_fallback_barriers.load(std::memory_order_relaxed);
}

}  // namespace poolguard::internal
