#include "backends/lockless/lockless_backend.h"

#include <cstring>

#include "absl/base/optimization.h"
#include "pool/sched_point.h"
#include "pool/system_memory.h"

#if !defined(__x86_64__)
#error "the lockless backend needs a 16-byte CAS; only x86-64 (cmpxchg16b) is supported"
#endif

namespace poolguard::internal {
namespace {

unsigned __int128 Pack(const void* ptr, uint64_t tag) {
  unsigned __int128 word;
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  static_assert(sizeof(p) == 8 && sizeof(word) == 16);
  std::memcpy(reinterpret_cast<char*>(&word), &p, 8);
  std::memcpy(reinterpret_cast<char*>(&word) + 8, &tag, 8);
  return word;
}

}  // namespace

LocklessBackend::Head LocklessBackend::LoadHead() const {
  POOLGUARD_SCHED_POINT(kLoadHead);
  // relaxed: the value is only a guess for the next CasHead(), which carries
  // the ordering. Reading tag first, as HAProxy does, makes a torn pair more
  // likely to fail the CAS early than to look coherent; either is safe.
  Head head;
  head.tag = __atomic_load_n(&head_.tag, __ATOMIC_RELAXED);
  head.ptr = __atomic_load_n(&head_.ptr, __ATOMIC_RELAXED);
  return head;
}

bool LocklessBackend::CasHead(Head& expected, Head desired, int success_order) {
  POOLGUARD_SCHED_POINT(kCas);
  auto* word = reinterpret_cast<unsigned __int128*>(&head_);
  unsigned __int128 current = Pack(expected.ptr, expected.tag);
  // Failure is relaxed: the returned value is again only a guess for a retry.
  if (__atomic_compare_exchange_n(word, &current, Pack(desired.ptr, desired.tag),
                                  /*weak=*/false, success_order,
                                  __ATOMIC_RELAXED)) {
    return true;
  }
  std::memcpy(&expected.ptr, &current, 8);
  std::memcpy(&expected.tag, reinterpret_cast<char*>(&current) + 8, 8);
  return false;
}

LocklessBackend::Head LocklessBackend::LoadUnclaimedHead() const {
  Head head = LoadHead();
  if (ABSL_PREDICT_FALSE(head.ptr == kBusy)) {
    // A claimer owns the first object for a few instructions; it ends the
    // claim by storing the next head.
    Backoff backoff;
    do {
      backoff.Wait();
      head = LoadHead();
    } while (head.ptr == kBusy);
  }
  return head;
}

void* LocklessBackend::PopFromShared(uint64_t tag_delta) {
#if defined(POOLGUARD_MUTANT_SEED_ALLOC_READS_FREED_HEAD)
  // SEEDED BUG (fuzz/mutants/README.md): the seed's pop, HAProxy 899fb8abd.
  // It reads the link of a head it does not own, then CASes; a concurrent
  // Flush() or Gc() may have released that head in between.
  static_assert(POOLGUARD_SCHEDULE_POINTS_ENABLED, "mutants exist only in fuzz builds");
  for (Head seed_head = LoadUnclaimedHead();;) {
    if (seed_head.ptr == nullptr) return nullptr;
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(seed_head.ptr);
    if (CasHead(seed_head, Head{next, seed_head.tag - tag_delta}, __ATOMIC_ACQUIRE)) {
      return seed_head.ptr;
    }
    if (seed_head.ptr == kBusy) seed_head = LoadUnclaimedHead();
  }
#endif
  Head head = LoadUnclaimedHead();
  for (;;) {
#if defined(POOLGUARD_MUTANT_EMPTY_PATH_KEEPS_LOCK)
    // SEEDED BUG (fuzz/mutants/README.md), after HAProxy 1c7c0d6b9: the pop
    // claims the head before looking, as an exchange-based pop does, and its
    // empty-pool return forgets to release the claim: the head stays kBusy and
    // every later pop, push and flush waits forever.
    static_assert(POOLGUARD_SCHEDULE_POINTS_ENABLED, "mutants exist only in fuzz builds");
    if (head.ptr == nullptr) {
      if (CasHead(head, Head{kBusy, head.tag}, __ATOMIC_ACQUIRE)) return nullptr;
      if (head.ptr == kBusy) head = LoadUnclaimedHead();
      continue;
    }
#endif
    if (head.ptr == nullptr) return nullptr;
    // Claim: {X, tag} -> {kBusy, tag - tag_delta}. acquire: pairs with the
    // release CAS in PushToShared() that published X (and, through the release
    // sequence of later CASes and claim-ending stores, every link below it),
    // so X's link is visible. On failure another thread changed the head
    // (pushed, claimed, flushed or reserved); `head` holds its value: retry.
    if (CasHead(head, Head{kBusy, head.tag - tag_delta}, __ATOMIC_ACQUIRE)) break;
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
  // X = head.ptr is ours: the list's head reads kBusy, so no pop, Gc() or
  // Flush() can reach X, and only those two release objects to the system.
  // Reading its link cannot touch freed memory.
  POOLGUARD_SCHED_POINT(kReadNext);
  void* next = ReadLink(head.ptr);
  // End the claim. release: publishes X's removal and keeps the chain of
  // links visible to the next claimer. Only `ptr` changes; while the head is
  // busy no CAS can succeed (each expects a non-busy ptr), so a plain store of
  // that half is race-free.
  POOLGUARD_SCHED_POINT(kStoreHead);
  __atomic_store_n(&head_.ptr, next, __ATOMIC_RELEASE);
  return head.ptr;
}

void LocklessBackend::PushToShared(void* object) {
  PoisonObject(object, layout_.slot_size);
  Head head = LoadUnclaimedHead();
  for (;;) {
    WriteLink(object, head.ptr);
    // {H, tag} -> {object, free + 1}. release: publishes the link just written
    // (and the object's memory) to whoever claims `object`. On failure the head
    // moved: relink to the new head and retry. A push never lands on a busy
    // head (the claimer's closing store would overwrite it): the expected
    // value is never kBusy, so such a CAS fails.
    if (CasHead(head, Head{object, head.tag + kFreeOne}, __ATOMIC_RELEASE)) return;
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
}

void* LocklessBackend::Alloc() {
  void* object = PopFromShared(kFreeOne);
  if (ABSL_PREDICT_TRUE(object != nullptr)) {
    UnpoisonObject(object, layout_.slot_size);
    return object;
  }
  return AllocFromSystem();
}

void LocklessBackend::Free(void* object) { PushToShared(object); }

void* LocklessBackend::AllocFromSystem() {
  // Reserve the object in `allocated` before asking the system, so that
  // concurrent callers cannot overshoot max_objects. The list itself is left
  // as it is (the CAS keeps ptr). relaxed: no memory changes hands here.
  Head head = LoadUnclaimedHead();
  for (;;) {
    if (AllocatedOf(head.tag) >= layout_.max_objects) {
      failed_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    if (CasHead(head, Head{head.ptr, head.tag + kAllocatedOne}, __ATOMIC_RELAXED)) {
      break;
    }
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
  void* object = AllocateFromSystem(layout_.slot_size, layout_.alignment);
  if (ABSL_PREDICT_FALSE(object == nullptr)) {
    // Give the reservation back.
    head = LoadUnclaimedHead();
    while (!CasHead(head, Head{head.ptr, head.tag - kAllocatedOne}, __ATOMIC_RELAXED)) {
      if (head.ptr == kBusy) head = LoadUnclaimedHead();
    }
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
  return object;
}

void LocklessBackend::Flush() {
  SpinLockHolder holder(&flush_lock_);
  Head head = LoadUnclaimedHead();
#if defined(POOLGUARD_MUTANT_FLUSH_ABA)
  // SEEDED BUG (fuzz/mutants/README.md), after HAProxy b6fa08bc7: detach the
  // list with a CAS on the pointer alone, then uncount the free objects of
  // the earlier snapshot. If the head went X -> ... -> X in between (X taken
  // and given back), the CAS still succeeds and the counts removed are stale.
  static_assert(POOLGUARD_SCHEDULE_POINTS_ENABLED, "mutants exist only in fuzz builds");
  for (;;) {
    if (head.ptr == nullptr) return;
    POOLGUARD_SCHED_POINT(kCas);
    void* expected = head.ptr;
    if (__atomic_compare_exchange_n(&head_.ptr, &expected, nullptr, false,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      break;
    }
    head = LoadUnclaimedHead();
  }
  {
    const uint64_t stale_free = FreeOf(head.tag);
    Head now = LoadUnclaimedHead();
    while (!CasHead(now, Head{now.ptr, now.tag - stale_free * kAllocatedOne - stale_free},
                    __ATOMIC_RELAXED)) {
      if (now.ptr == kBusy) now = LoadUnclaimedHead();
    }
  }
#else
  for (;;) {
    if (head.ptr == nullptr) return;
    // Detach the whole list and uncount it:
    // {X, allocated, free} -> {nullptr, allocated - free, 0}.
    // acquire: pairs with the release CASes that pushed every object of the
    // chain, so all their links are visible. On failure the head moved: retry.
    const uint64_t free = FreeOf(head.tag);
    const Head empty = {nullptr, head.tag - free * kAllocatedOne - free};
    if (CasHead(head, empty, __ATOMIC_ACQUIRE)) break;
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
#endif
  // The chain from head.ptr is ours alone: the list no longer leads to it and
  // no claim was in progress (the head was not busy when we swapped it).
  void* object = head.ptr;
  while (object != nullptr) {
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(object);
    ReleaseToSystem(object, layout_.slot_size, layout_.alignment);
    object = next;
  }
}

void LocklessBackend::Gc() {
  SpinLockHolder holder(&flush_lock_);
  // relaxed: a hint; each object is then taken with the claim protocol. Under
  // the flush lock no other Gc() or Flush() lowers the count meanwhile, and an
  // Alloc() that does only makes the next check stop earlier.
  while (FreeOf(__atomic_load_n(&head_.tag, __ATOMIC_RELAXED)) > layout_.min_free) {
    // Take one object off and uncount it from `allocated` in the same step.
    void* object = PopFromShared(kFreeOne + kAllocatedOne);
    if (object == nullptr) break;
    ReleaseToSystem(object, layout_.slot_size, layout_.alignment);
  }
}

PoolStats LocklessBackend::Stats() const {
  // One 8-byte load: the counts change together with the list, so this
  // snapshot is consistent (never torn), and exact when the pool is quiescent.
  // relaxed: nothing else is read through it.
  const uint64_t tag = __atomic_load_n(&head_.tag, __ATOMIC_RELAXED);
  PoolStats stats;
  stats.allocated = AllocatedOf(tag);
  stats.free = FreeOf(tag);
  stats.used = stats.allocated - stats.free;
  stats.failed = failed_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace poolguard::internal
