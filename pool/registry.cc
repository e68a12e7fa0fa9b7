// The registry of live pools (GcAll() walks it), and the fork() handlers.
//
// fork() while other threads are inside pool calls: the child would inherit
// their locks, claims and cache windows, held by threads that do not exist
// there, and hang on its first call. The prepare handler therefore takes,
// in this order (every lock a thread can hold while it waits for another
// comes first):
//   1. the registry lock: no pool is created or destroyed, no GcAll() runs;
//   2. the system gate (pool/system_memory.h): no malloc()/free() of ours in
//      flight; a GcAll() made room for one before, outside the gate;
//   3. the backend's global state (Backend::LockAllForFork(): tlcache closes
//      every thread cache, one barrier, waits for their windows);
//   4. each pool's own state, in registry order (Backend::LockForFork(): a
//      lock, the shared list's claim, the transfer cache);
//   5. the leaf locks of the system layer (failure injection, debug mode's
//      block set);
// and both sides release them in reverse order after the fork. The child
// also gives back what belonged to threads that do not exist there (the
// backends' UnlockAfterFork(child)), so that it can use, flush and destroy
// every pool it inherited with exact stats. Nothing in steps 2-5 waits for a
// lock of an earlier step, so the prepare handler always finishes.

#include "pool/registry.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "pool/backend_contract.h"
#include "pool/pool.h"
#include "pool/spinlock.h"
#include "pool/system_memory.h"

namespace poolguard::internal {
namespace {

// A SpinLock rather than absl::Mutex: a fuzz scheduler must see every wait
// through its schedule points, and the critical sections are short except
// GcAll()'s, which is rare. Constant-initialized, so pools may be created from
// static constructors in other translation units.
ABSL_CONST_INIT SpinLock g_registry_lock;
// The live pools, as an intrusive doubly-linked list through
// Pool::registry_prev_/registry_next_ (also guarded by g_registry_lock).
ABSL_CONST_INIT Pool* g_first_pool ABSL_GUARDED_BY(g_registry_lock) = nullptr;

}  // namespace

void Registry::PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_registry_lock.Lock();
  CloseSystemForFork();
  LockAllForForkOf<Backend>();
  for (Pool* pool = g_first_pool; pool != nullptr; pool = pool->registry_next_) {
    LockForForkOf(pool->backend_);
  }
  LockSystemLeavesForFork();
}

void Registry::AfterFork(bool child) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  UnlockSystemLeavesAfterFork();
  for (Pool* pool = g_first_pool; pool != nullptr; pool = pool->registry_next_) {
    UnlockAfterForkOf(pool->backend_, child);
  }
  UnlockAllAfterForkOf<Backend>(child);
  OpenSystemAfterFork();
  g_registry_lock.Unlock();
}

void Registry::Add(Pool* pool) {
  // Once, before the first pool exists: from then on every fork() runs them.
  static std::once_flag installed;
  std::call_once(installed, [] {
    if (pthread_atfork([] { PrepareFork(); }, [] { AfterFork(/*child=*/false); },
                       [] { AfterFork(/*child=*/true); }) != 0) {
      std::fprintf(stderr, "poolguard: pthread_atfork() failed: fork() would not be safe\n");
      std::abort();
    }
  });
  SpinLockHolder holder(&g_registry_lock);
  pool->registry_prev_ = nullptr;
  pool->registry_next_ = g_first_pool;
  if (g_first_pool != nullptr) g_first_pool->registry_prev_ = pool;
  g_first_pool = pool;
}

void Registry::Remove(Pool* pool) {
  // Taking the lock waits for a ForEach() in progress, which holds it.
  SpinLockHolder holder(&g_registry_lock);
  if (pool->registry_prev_ != nullptr) {
    pool->registry_prev_->registry_next_ = pool->registry_next_;
  } else {
    g_first_pool = pool->registry_next_;
  }
  if (pool->registry_next_ != nullptr) {
    pool->registry_next_->registry_prev_ = pool->registry_prev_;
  }
  pool->registry_prev_ = pool->registry_next_ = nullptr;
}

void Registry::ForEach(absl::FunctionRef<void(Pool*)> fn) {
  SpinLockHolder holder(&g_registry_lock);
  for (Pool* pool = g_first_pool; pool != nullptr; pool = pool->registry_next_) {
    fn(pool);
  }
}

}  // namespace poolguard::internal
