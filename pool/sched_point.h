// Schedule points: marks on the shared-memory steps of the pool code.
//
// POOLGUARD_SCHED_POINT(kind) sits on the line of each step that another
// thread can observe or disturb: the load of a free-list head, the read of a
// `next` link, each CAS, each lock and unlock, each release to the system.
//
// In production builds it expands to nothing, so the optimized object code is
// the same as without it. In fuzz builds (POOLGUARD_SCHEDULE_POINTS defined,
// see //fuzz), it calls a hook that a scheduler installs: the scheduler runs
// one thread at a time and may switch threads at any such point, which lets a
// fuzzer choose and replay interleavings.

#ifndef POOLGUARD_POOL_SCHED_POINT_H_
#define POOLGUARD_POOL_SCHED_POINT_H_

#include <cstdint>
#include <type_traits>

namespace poolguard::internal {

// What a schedule point marks. A backend puts one on the line of each step
// another thread can observe or disturb. The system memory layer carries its
// own (kAllocateSystem, kReleaseSystem), and so do pool/spinlock.h's locks
// (kLock, kUnlock, kSpin), so a backend built on them gets those for free.
// New kinds go at the end: fuzz inputs name kinds by number (fuzz/schedule.h).
enum class SchedPoint {
  kLoadHead,        // before reading a free-list head (or any shared word)
  kReadNext,        // before reading the link of a free object
  kCas,             // before a compare-and-swap on a shared word
  kStoreHead,       // before a plain store to a shared word
  kLock,            // before trying to take a lock
  kUnlock,          // before releasing a lock
  kSpin,            // in a wait loop: another thread must move first
  kAllocateSystem,  // before obtaining memory from the system
  kReleaseSystem,   // before releasing memory to the system
  kFence,           // before a memory fence or a heavy barrier (membarrier)
  kCounter,         // before updating a shared counter (a count or a statistic)
};
inline constexpr int kSchedPointKinds = static_cast<int>(SchedPoint::kCounter) + 1;

// A schedule point's site: a number for the file and line it is on, the
// same in every build of the same source (FNV-1a). A scheduler that tells
// libFuzzer which interleaving a run took names the steps by site.
constexpr uint32_t SchedSiteId(const char* file, int line) {
  uint32_t hash = 2166136261u;
  for (const char* c = file; *c != '\0'; ++c) {
    hash = (hash ^ static_cast<unsigned char>(*c)) * 16777619u;
  }
  return (hash ^ static_cast<uint32_t>(line)) * 16777619u;
}

#if defined(POOLGUARD_SCHEDULE_POINTS)
// Installed by a scheduler before the threads it controls start; nullptr (the
// default) makes every point a no-op.
using SchedPointHook = void (*)(SchedPoint point, uint32_t site);
void SetSchedPointHook(SchedPointHook hook);
void RunSchedPointHook(SchedPoint point, uint32_t site);
#endif

}  // namespace poolguard::internal

// 1 when schedule points are compiled in (the _sched variant), else 0.
#if defined(POOLGUARD_SCHEDULE_POINTS)
#define POOLGUARD_SCHEDULE_POINTS_ENABLED 1
#else
#define POOLGUARD_SCHEDULE_POINTS_ENABLED 0
#endif

// 1 in the fuzz variants (_sched and _fuzz), 0 in production and debug
// builds. Seeded bugs static_assert on it, so that none can ever compile
// into a build users get: their defines reach the fuzz variants only
// (variants.bzl).
#if defined(POOLGUARD_FUZZ_BUILD)
#define POOLGUARD_FUZZ_BUILD_ENABLED 1
#else
#define POOLGUARD_FUZZ_BUILD_ENABLED 0
#endif

#if defined(POOLGUARD_SCHEDULE_POINTS)
#define POOLGUARD_SCHED_POINT(kind)            \
  ::poolguard::internal::RunSchedPointHook(    \
      ::poolguard::internal::SchedPoint::kind, \
      std::integral_constant<uint32_t,         \
                             ::poolguard::internal::SchedSiteId(__FILE__, __LINE__)>::value)
#elif !defined(POOLGUARD_SCHED_POINT)
// (tests/codegen_test predefines it as empty, the "no schedule points at all"
// baseline, and checks that this production expansion compiles to the same
// object code.)
#define POOLGUARD_SCHED_POINT(kind) static_cast<void>(0)
#endif

#endif  // POOLGUARD_POOL_SCHED_POINT_H_
