// A small test-and-test-and-set spinlock, and the back-off its waiters use.
//
// Most code should use absl::Mutex. The pools use this lock because their
// critical sections are a handful of instructions (pop or push one object),
// where a mutex's bookkeeping costs more than the wait: see the measurement in
// backends/locked/locked_backend.h. Waiters yield the CPU after a short spin, so
// a holder preempted on an oversubscribed machine (more threads than cores) is
// not starved by spinners on its core.
//
// Every step is a schedule point, so a fuzz scheduler can preempt a holder and
// see a waiter that cannot progress (a lock leaked on an early return shows up
// as "no runnable thread").

#ifndef POOLGUARD_POOL_SPINLOCK_H_
#define POOLGUARD_POOL_SPINLOCK_H_

#include <sched.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "pool/atomic.h"
#include "pool/sched_point.h"

namespace poolguard::internal {

// Tells the CPU that this thread is spinning (x86 PAUSE), which frees pipeline
// resources for a sibling hyper-thread and avoids a memory-order mis-speculation
// penalty when the awaited store arrives.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Exponential-ish back-off for wait loops: PAUSE for a while, then yield the
// CPU so that the thread we wait for can run if it shares our core.
class Backoff {
 public:
  void Wait() {
    POOLGUARD_SCHED_POINT(kSpin);
    if (spins_ < kSpinsBeforeYield) {
      ++spins_;
      CpuRelax();
    } else {
      sched_yield();
    }
  }

 private:
  // About 1-2 us of PAUSE on current x86 parts: longer than any critical
  // section here, shorter than a scheduler quantum.
  static constexpr int kSpinsBeforeYield = 64;
  int spins_ = 0;
};

class ABSL_LOCKABLE SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  ABSL_ATTRIBUTE_ALWAYS_INLINE void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    POOLGUARD_SCHED_POINT(kLock);
    // acquire: pairs with the release store in Unlock(), so the previous
    // holder's writes are visible to this one.
    if (ABSL_PREDICT_FALSE(locked_.exchange(true, std::memory_order_acquire))) LockSlow();
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void Unlock() ABSL_UNLOCK_FUNCTION() {
    POOLGUARD_SCHED_POINT(kUnlock);
    // release: publishes the critical section to the next Lock().
    locked_.store(false, std::memory_order_release);
  }

 private:
  // The contended case, out of line so that Lock() inlines small.
  ABSL_ATTRIBUTE_NOINLINE void LockSlow() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    do {
      // Wait with plain loads, which keep the line shared, instead of
      // exchanges, which would bounce it between the waiters. relaxed: only a
      // hint; the exchange below re-checks with acquire.
      Backoff backoff;
      do {
        backoff.Wait();
      } while (locked_.load(std::memory_order_relaxed));
      POOLGUARD_SCHED_POINT(kLock);
    } while (locked_.exchange(true, std::memory_order_acquire));
  }

  Atomic<bool> locked_{false};
};

class ABSL_SCOPED_LOCKABLE SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock* lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock) : lock_(lock) {
    lock_->Lock();
  }
  ~SpinLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock* const lock_;
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_POOL_SPINLOCK_H_
