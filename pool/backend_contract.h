// The backend contract, in code: what `poolguard::internal::Backend` (the
// class "poolguard/backend.h" names, held by value in every Pool) must
// provide, checked at compile time with a message for each missing member,
// and the optional members the pool layer and the fuzz oracles use when a
// backend has them. backends/README.md explains each rule; defs.bzl's
// poolguard_backend() builds a backend and its whole suite.
//
// Required:
//   static constexpr std::string_view kName;    // BackendName()
//   static constexpr size_t kMaxObjects;        // the most objects it counts
//   explicit Backend(const PoolLayout& layout); // layout outlives the backend
//   ~Backend();                                 // releases every free object
//   void* Alloc();                              // nullptr: limit or no memory
//   void Free(void* object);
//   void Flush();                               // release every free object
//   void Gc();                                  // release beyond min_free
//   PoolStats Stats() const;                    // exact when quiescent
//
// Optional:
//   static constexpr StatsSemantics kStatsSemantics;
//       How Stats() counts objects the backend caches per thread (the default
//       kCachedAreFree). The oracles check the invariants the declared
//       semantics promise instead of being switched off.
//   static void ReleaseThreadCaches();
//       Gives back the calling thread's cached objects, as its exit would
//       (poolguard::ReleaseThreadCaches()). Backends without thread caches
//       need none.
//   void LockForFork();  void UnlockAfterFork(bool child);
//   static void LockAllForFork();  static void UnlockAllAfterFork(bool child);
//       fork() handlers (pool/registry.cc calls them, pools in registry
//       order, in the lock order it documents): hold whatever a thread could
//       be in the middle of, so that the child inherits no half-done step;
//       after the fork, release it in parent and child, and in the child give
//       back what belonged to threads that do not exist there.
//
// What a backend gets from pool/ (and must use):
//   - pool/system_memory.h: every block from and back to the system
//     (AllocateFromSystem, ReleaseToSystem). That layer applies failure
//     injection, the byte limit, debug mode's block set and the fork gate,
//     and carries its own schedule points (kAllocateSystem, kReleaseSystem).
//     Free objects are poisoned with PoisonObject(), links read and written
//     with ReadLink()/WriteLink().
//   - pool/sched_point.h: POOLGUARD_SCHED_POINT(kind) on the line of every
//     shared-memory step another thread can observe (kCounter for a count
//     or statistic); it compiles to nothing outside fuzz builds.
//     pool/spinlock.h's locks carry their own (kLock, kUnlock, kSpin).
//   - pool/limits.h: internal::GcAllPools(), the way to ask for a
//     registry-wide gc (as HAProxy calls pool_gc() when malloc fails), with
//     no lock held that your Gc() or Flush() takes. The system layer already
//     runs it once before it refuses a request.

#ifndef POOLGUARD_POOL_BACKEND_CONTRACT_H_
#define POOLGUARD_POOL_BACKEND_CONTRACT_H_

#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

#include "pool/layout.h"
#include "pool/pool_types.h"

namespace poolguard {

// How a backend's Stats() counts the free objects it caches per thread.
enum class StatsSemantics {
  // Cached objects count as free (poolguard's backends): at every quiescent
  // point used == the objects the program holds.
  kCachedAreFree,
  // Cached objects count as used until they leave the thread's cache
  // (HAProxy's pools): at a quiescent point used >= the objects held, and
  // used == held once every thread's cache was given back (thread exit or
  // ReleaseThreadCaches()) or the pool flushed.
  kCachedAreUsed,
};

namespace internal {
namespace contract {

template <typename B, typename = void>
struct HasName : std::false_type {};
template <typename B>
struct HasName<B, std::enable_if_t<std::is_convertible_v<decltype(B::kName), std::string_view>>>
    : std::true_type {};

template <typename B, typename = void>
struct HasMaxObjects : std::false_type {};
template <typename B>
struct HasMaxObjects<B, std::enable_if_t<std::is_convertible_v<decltype(B::kMaxObjects), size_t>>>
    : std::true_type {};

template <typename B, typename = void>
struct HasAlloc : std::false_type {};
template <typename B>
struct HasAlloc<B, std::enable_if_t<std::is_same_v<decltype(std::declval<B&>().Alloc()), void*>>>
    : std::true_type {};

template <typename B, typename = void>
struct HasFree : std::false_type {};
template <typename B>
struct HasFree<B, std::void_t<decltype(std::declval<B&>().Free(std::declval<void*>()))>>
    : std::true_type {};

template <typename B, typename = void>
struct HasFlush : std::false_type {};
template <typename B>
struct HasFlush<B, std::void_t<decltype(std::declval<B&>().Flush())>> : std::true_type {};

template <typename B, typename = void>
struct HasGc : std::false_type {};
template <typename B>
struct HasGc<B, std::void_t<decltype(std::declval<B&>().Gc())>> : std::true_type {};

template <typename B, typename = void>
struct HasStats : std::false_type {};
template <typename B>
struct HasStats<
    B, std::enable_if_t<std::is_same_v<decltype(std::declval<const B&>().Stats()), PoolStats>>>
    : std::true_type {};

template <typename B, typename = void>
struct HasStatsSemantics : std::false_type {};
template <typename B>
struct HasStatsSemantics<B, std::enable_if_t<std::is_same_v<
                                std::remove_cv_t<decltype(B::kStatsSemantics)>, StatsSemantics>>>
    : std::true_type {};

template <typename B, typename = void>
struct HasReleaseThreadCaches : std::false_type {};
template <typename B>
struct HasReleaseThreadCaches<B, std::void_t<decltype(B::ReleaseThreadCaches())>> : std::true_type {
};

template <typename B, typename = void>
struct HasLockForFork : std::false_type {};
template <typename B>
struct HasLockForFork<B, std::void_t<decltype(std::declval<B&>().LockForFork()),
                                     decltype(std::declval<B&>().UnlockAfterFork(true))>>
    : std::true_type {};

template <typename B, typename = void>
struct HasLockAllForFork : std::false_type {};
template <typename B>
struct HasLockAllForFork<
    B, std::void_t<decltype(B::LockAllForFork()), decltype(B::UnlockAllAfterFork(true))>>
    : std::true_type {};

}  // namespace contract

// Instantiated by pool/pool.h for the backend it is built with: each missing
// member is a compile error naming it.
template <typename B>
constexpr bool CheckBackendContract() {
  static_assert(
      contract::HasName<B>::value,
      "poolguard backend: needs `static constexpr std::string_view kName` (BackendName())");
  static_assert(contract::HasMaxObjects<B>::value,
                "poolguard backend: needs `static constexpr size_t kMaxObjects` (the most objects "
                "it can count; Create() rejects larger max_objects)");
  static_assert(std::is_constructible_v<B, const PoolLayout&>,
                "poolguard backend: needs `explicit Backend(const PoolLayout& layout)`");
  static_assert(std::is_nothrow_destructible_v<B>,
                "poolguard backend: needs a (noexcept) destructor that releases every free object");
  static_assert(contract::HasAlloc<B>::value, "poolguard backend: needs `void* Alloc()`");
  static_assert(contract::HasFree<B>::value, "poolguard backend: needs `void Free(void* object)`");
  static_assert(contract::HasFlush<B>::value, "poolguard backend: needs `void Flush()`");
  static_assert(contract::HasGc<B>::value, "poolguard backend: needs `void Gc()`");
  static_assert(contract::HasStats<B>::value, "poolguard backend: needs `PoolStats Stats() const`");
  return true;
}

// The stats semantics a backend declares (kCachedAreFree if it declares none).
template <typename B>
constexpr StatsSemantics StatsSemanticsOf() {
  if constexpr (contract::HasStatsSemantics<B>::value) {
    return B::kStatsSemantics;
  } else {
    return StatsSemantics::kCachedAreFree;
  }
}

template <typename B>
void ReleaseThreadCachesOf() {
  if constexpr (contract::HasReleaseThreadCaches<B>::value) B::ReleaseThreadCaches();
}

template <typename B>
void LockForForkOf(B& backend) {
  if constexpr (contract::HasLockForFork<B>::value) backend.LockForFork();
}

template <typename B>
void UnlockAfterForkOf(B& backend, bool child) {
  if constexpr (contract::HasLockForFork<B>::value) backend.UnlockAfterFork(child);
}

template <typename B>
void LockAllForForkOf() {
  if constexpr (contract::HasLockAllForFork<B>::value) B::LockAllForFork();
}

template <typename B>
void UnlockAllAfterForkOf(bool child) {
  if constexpr (contract::HasLockAllForFork<B>::value) B::UnlockAllAfterFork(child);
}

}  // namespace internal
}  // namespace poolguard

#endif  // POOLGUARD_POOL_BACKEND_CONTRACT_H_
