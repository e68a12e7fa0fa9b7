#include "pool/registry.h"

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "pool/pool.h"
#include "pool/spinlock.h"

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

void Registry::Add(Pool* pool) {
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
