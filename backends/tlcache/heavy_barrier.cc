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
#include "pool/atomic.h"
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
ABSL_CONST_INIT Atomic<int> g_mode{kUnchosen};
ABSL_CONST_INIT Atomic<uint64_t> g_fallback_barriers{0};
// The error of the membarrier() call that failed, for FallbackBarrier()'s
// message.
ABSL_CONST_INIT Atomic<int> g_last_error{0};

// Set with kFencedMode when the failure that caused the switch was injected
// (SetSystemCallFailure()), not the kernel's: once the injection is off, the
// next Mode() tries membarrier() again (LeaveInjectedFencedMode()), so that a
// test or a fuzz run can make membarrier() fail without fencing every run
// after it. A real failure is for good. relaxed: written and read with
// g_mode, under the same serialization.
ABSL_CONST_INIT Atomic<bool> g_fenced_by_injection{false};

// membarrier(cmd), or the injected failure; returns 0 or an errno value, and
// says in *injected which of the two failed.
int Membarrier(int cmd, bool* injected) {
  *injected = false;
  if (const int error = InjectedSystemCallError(SystemCall::kMembarrier)) {
    *injected = true;
    return error;
  }
  // (A real failure cannot be caused on demand; the injected one stands in.)
  const long result = syscall(__NR_membarrier, cmd, 0, 0);
  const int error = result == 0 ? 0 : errno;  // coverage-exempt: see above
  // A barrier that worked: every thread of the process ran a full barrier
  // (and does so in the scheduled fuzz variant's memory model: pool/atomic.h).
  if (error == 0 && cmd == MEMBARRIER_CMD_PRIVATE_EXPEDITED) ProcessWideBarrierDone();
  return error;
}

int ChooseMode() {
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  // coverage-exempt-begin: what the kernel offers is fixed per machine; the
  // injected failure of the registration (POOLGUARD_FAIL_MEMBARRIER=1) takes
  // the fenced branch.
  if (commands >= 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    bool injected = false;
    if (Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, &injected) == 0) {
      return kMembarrierMode;
    }
    g_fenced_by_injection.store(injected, std::memory_order_relaxed);
  }
  // coverage-exempt-end
  return kFencedMode;
}

// The process is fenced because of an injected failure: unless that
// injection is still set, chooses again (registering again is harmless, and
// the registration may be the call that failed). Going back to
// kMembarrierMode is safe at any time: every drain from then on runs
// membarrier(), which covers every window, fenced or not, as when the
// process started in that mode; caches marked fenced just keep fencing
// until they are reopened. Callers hold the cache registry lock, as for the
// switch to fenced mode.
int LeaveInjectedFencedMode() {
  if (SystemCallFailureSet(SystemCall::kMembarrier)) return kFencedMode;
  g_fenced_by_injection.store(false, std::memory_order_relaxed);
  const int mode = ChooseMode();
  g_mode.store(mode, std::memory_order_relaxed);
  return mode;
}

int Mode() {
  const int mode = g_mode.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_TRUE(mode == kMembarrierMode)) return mode;
  if (mode == kFencedMode) {
    // A real failure (fenced for good) cannot be caused on demand; the
    // injected ones take the other way.
    const bool for_good = !g_fenced_by_injection.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_TRUE(for_good)) return mode;  // coverage-exempt: see above
    return LeaveInjectedFencedMode();
  }
  // Two first callers may both query; both get the same answer, and
  // registering twice is harmless. Whoever loses the exchange, and whoever
  // a failing barrier switched to kFencedMode in between, reads the winner's
  // choice or the switch: either is a mode every window can follow.
  int expected = kUnchosen;
  g_mode.compare_exchange_strong(expected, ChooseMode(), std::memory_order_relaxed);
  return g_mode.load(std::memory_order_relaxed);
}

// The fallback barrier: changing the protection of a page that is present
// in this process's page tables makes the kernel shoot down its TLB entries
// on every CPU that may hold them, that is every CPU that ran one of our
// threads since it last flushed; each receives an interrupt, a full barrier.
// A CPU that is not running one of our threads ran a context switch since,
// which is a full barrier too. Returns 0 or an errno value.
int MprotectBarrier() {
  // coverage-exempt-begin: the fallback's own failures end the process
  // (FallbackBarrier()), so no fuzz run can take them; heavy_barrier_test and
  // fence_switch_test inject them.
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
  // coverage-exempt-end
  ProcessWideBarrierDone();  // as after membarrier() (HeavyBarrier())
  g_fallback_barriers.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

}  // namespace

bool OwnersMustFence() { return Mode() == kFencedMode; }

bool InFencedMode() { return g_mode.load(std::memory_order_relaxed) == kFencedMode; }

HeavyBarrierResult HeavyBarrier() {
  // seq_cst: the drainer's own side of the Dekker pattern; in fenced mode it
  // pairs with the owners' fences and is all that is needed.
  ThreadFence(std::memory_order_seq_cst);
  if (Mode() == kFencedMode) return HeavyBarrierResult::kDone;
  POOLGUARD_SCHED_POINT(kFence);
  bool injected = false;
  const int error = Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, &injected);
  if (ABSL_PREDICT_TRUE(error == 0)) return HeavyBarrierResult::kDone;
  // From now on every window must be fenced: new caches open fenced, the
  // caller marks the open ones, and the windows already open without a fence
  // are covered by FallbackBarrier(), as membarrier() would have covered
  // them.
  g_last_error.store(error, std::memory_order_relaxed);
  g_fenced_by_injection.store(injected, std::memory_order_relaxed);
  g_mode.store(kFencedMode, std::memory_order_relaxed);
  // (Only an injected failure can be caused on demand.)
  const char* const cause = injected ? ", injected" : "";  // coverage-exempt: see above
  std::fprintf(stderr,
               "poolguard: tlcache: membarrier() failed (%s%s); thread caches fence every access "
               "from now on (slower, still correct)\n",
               std::strerror(error), cause);
  return HeavyBarrierResult::kNeedsFallback;
}

void FallbackBarrier() {
  POOLGUARD_SCHED_POINT(kFence);
  ThreadFence(std::memory_order_seq_cst);
  const int error = MprotectBarrier();
  // coverage-exempt-begin: no barrier at all is fatal (see MprotectBarrier()).
  if (error != 0) {
    std::fprintf(stderr,
                 "poolguard: tlcache: no barrier can drain thread caches safely: "
                 "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed (%s), and so did the "
                 "mprotect() fallback (%s)\n",
                 std::strerror(g_last_error.load(std::memory_order_relaxed)), std::strerror(error));
    std::abort();
  }
  // coverage-exempt-end
}

// coverage-exempt-begin: for tests only.
uint64_t FallbackBarriersForTesting() {
  return g_fallback_barriers.load(std::memory_order_relaxed);
}
// coverage-exempt-end

}  // namespace poolguard::internal
