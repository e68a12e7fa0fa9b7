// The drainer's half of the asymmetric handshake of thread caches
// (thread_cache.h): a barrier that makes every other thread of the process
// run a full memory barrier, so that the owners' side of the handshake can
// be a compiler barrier alone.
//
// The handshake is a store-buffering (Dekker) pattern:
//   owner:   busy = 1;  [owner's barrier];  read open
//   drainer: open = 0;  [HeavyBarrier()];   read busy
// With a full fence on both sides, at least one thread sees the other's
// store. HeavyBarrier() gives the drainer's side that guarantee *for both*:
// when it returns, every other thread has executed a full barrier at some
// point since the drainer's stores were made visible, so either an owner's
// busy = 1 preceded that point (and is visible to the drainer's loads), or
// the owner's load of open follows it (and sees 0).
//
// How, in order:
//   1. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), registered once when the
//      first cache binds. Its result is checked every time.
//   2. If it is unavailable or fails (ENOMEM on kernels with
//      CPUMASK_OFFSTACK, EPERM or ENOSYS under a seccomp filter installed
//      later, or a failure injected with SetSystemCallFailure()), the process
//      switches to
//      fenced windows for good: owners then run a full fence in every window
//      (OwnersMustFence()), and later drains need a plain fence only. (An
//      injected failure lasts as long as the injection: once it is turned
//      off, the next drain or bind tries membarrier() again, and a process
//      whose membarrier() works goes back to unfenced windows.) The
//      windows that were opened without a fence before the switch are still
//      covered by this one barrier, made with the fallback: mprotect() on a
//      page this process has written, which the kernel can complete only
//      after a TLB shootdown reached every CPU that may be running one of
//      the process's threads (an interrupt, hence a full barrier, there);
//      folly's asymmetricHeavyBarrier falls back to the same.
//   3. If the fallback fails too, the process aborts with both errors: going
//      on would let an owner and a drainer both take one cache.
//
// The switch (step 2) needs the caller: before the fallback barrier runs,
// every cache still open for unfenced windows must be marked fenced, so that
// each window is either fenced or opened before the barrier (and so covered
// by it). HeavyBarrier() returns kNeedsFallback the one time membarrier()
// fails; the caller marks the caches, then calls FallbackBarrier().

#ifndef POOLGUARD_BACKENDS_TLCACHE_HEAVY_BARRIER_H_
#define POOLGUARD_BACKENDS_TLCACHE_HEAVY_BARRIER_H_

#include <atomic>
#include <cstdint>

namespace poolguard::internal {

enum class HeavyBarrierResult {
  // Done: membarrier() ran, or windows are fenced and the drainer's own
  // fence was enough.
  kDone,
  // membarrier() failed just now, and the process is in fenced mode from
  // here on. The caller marks every open cache fenced, then calls
  // FallbackBarrier() before it reads any busy flag.
  kNeedsFallback,
};

// Registers for expedited membarrier() on first use; afterwards, whether
// owners must fence their windows: true when membarrier() is unavailable or
// has failed once (an injected failure: while it is set). relaxed: the mode
// changes only under the cache registry lock, and owners learn of it through
// the caches that lock opens and reopens (thread_cache.h); going back to
// unfenced windows needs no ordering, as every drain after it runs
// membarrier().
bool OwnersMustFence();

// The mode as it stands, for assertions: true when the process is in fenced
// mode. Unlike OwnersMustFence(), chooses nothing and never switches back.
bool InFencedMode();

// The drainer's barrier, after its stores of open = 0 and before its loads
// of busy. Runs a seq_cst fence first (the drainer's side in fenced mode,
// and what orders its own stores before the system call). Callers serialize
// (the cache registry lock); see the file comment for what it guarantees.
HeavyBarrierResult HeavyBarrier();

// The fallback after kNeedsFallback: mprotect() on a page of our own (the
// file comment says why it is a barrier on every CPU running our threads).
// Aborts, naming both errors, if it fails too.
void FallbackBarrier();

// Tests: the barriers made by the mprotect() fallback. (Both system calls can
// be made to fail, as memory requests can: SetSystemCallFailure() in
// pool/failure_injection.h.)
uint64_t FallbackBarriersForTesting();

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_HEAVY_BARRIER_H_
