// The registry of live pools, which GcAll() walks (HAProxy's `pools` list).

#ifndef POOLGUARD_POOL_REGISTRY_H_
#define POOLGUARD_POOL_REGISTRY_H_

#include "absl/functional/function_ref.h"

namespace poolguard {
class Pool;

namespace internal {

class Registry {
 public:
  // Adds a new pool. REQUIRES: pool is not registered.
  static void Add(Pool* pool);
  // Removes a pool; returns only when no ForEach() is visiting it.
  static void Remove(Pool* pool);
  // Calls fn on every registered pool, holding the registry lock throughout:
  // no pool can leave (be destroyed) while fn runs on it.
  static void ForEach(absl::FunctionRef<void(Pool*)> fn);

 private:
  // The fork() handlers (registry.cc says what they hold, in which order).
  static void PrepareFork();
  static void AfterFork(bool child);
};

}  // namespace internal
}  // namespace poolguard

#endif  // POOLGUARD_POOL_REGISTRY_H_
