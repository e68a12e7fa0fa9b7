#include "backends/common/shared_free_list.h"

#include "pool/atomic.h"
#include "pool/sched_point.h"
#include "pool/spinlock.h"

namespace poolguard::internal {

SharedFreeList::Head SharedFreeList::WaitUnclaimedHead() const {
  // A claimer holds the list for a few instructions; it ends the claim by
  // storing the next head.
  Backoff backoff;
  Head head;
  do {
    backoff.Wait();
    head = LoadHead();
  } while (head.ptr == kBusy);
  return head;
}

size_t SharedFreeList::PopBatch(void** out, size_t want) {
  return ClaimAndPop(out, want, /*keep=*/0, kFreeOne);
}

size_t SharedFreeList::PopSurplusToRelease(void** out, size_t max, size_t keep) {
  return ClaimAndPop(out, max, keep, kFreeOne + kAllocatedOne);
}

void SharedFreeList::PushChain(void* first, void* last, size_t n) {
  PushChainInline(first, last, n);
}

bool SharedFreeList::ReserveAllocated(size_t max_objects) {
  // {ptr, tag} -> {ptr, allocated + 1}: the list itself stays as it is.
  // relaxed: no memory changes hands here.
  Head head = LoadUnclaimedHead();
  for (;;) {
    if (AllocatedOf(head.tag) >= max_objects) return false;
    if (CasHead(head, Head{head.ptr, head.tag + kAllocatedOne}, __ATOMIC_RELAXED)) {
      return true;
    }
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
}

void SharedFreeList::UnreserveAllocated() {
  Head head = LoadUnclaimedHead();
  while (!CasHead(head, Head{head.ptr, head.tag - kAllocatedOne}, __ATOMIC_RELAXED)) {
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
}

void* SharedFreeList::TakeAllToRelease() {
  Head head = LoadUnclaimedHead();
#if defined(POOLGUARD_MUTANT_FLUSH_ABA)
  // SEEDED BUG (fuzz/mutants/README.md), after HAProxy b6fa08bc7: detach the
  // list with a CAS on the pointer alone, then uncount the free objects of
  // the earlier snapshot. If the head went X -> ... -> X in between (X taken
  // and given back), the CAS still succeeds and the counts removed are stale.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  for (;;) {
    if (head.ptr == nullptr) return nullptr;
    POOLGUARD_SCHED_POINT(kCas);
    void* expected = head.ptr;
    if (AtomicCompareExchangeN(&head_.ptr, &expected, nullptr, false, __ATOMIC_ACQUIRE,
                               __ATOMIC_RELAXED)) {
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
  return head.ptr;
#endif
  for (;;) {
    if (head.ptr == nullptr) return nullptr;
    // Detach the whole list and uncount it:
    // {X, allocated, free} -> {nullptr, allocated - free, 0}.
    // acquire: pairs with the release CASes that pushed every object of the
    // chain, so all their links are visible. On failure the head moved: retry.
    const uint64_t free = FreeOf(head.tag);
    const Head empty = {nullptr, head.tag - free * kAllocatedOne - free};
    if (CasHead(head, empty, __ATOMIC_ACQUIRE)) break;
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
  // The chain from head.ptr is ours alone: the list no longer leads to it,
  // and no claim was in progress (the head was not busy when we swapped it).
  return head.ptr;
}

void SharedFreeList::LockForFork() {
  fork_first_ = Claim();
  // relaxed: the claim's acquire made the last tag visible.
  fork_tag_ = AtomicLoadN(&head_.tag, __ATOMIC_RELAXED);
}

void SharedFreeList::UnlockAfterFork() { EndClaim(fork_first_, fork_tag_); }

SharedFreeList::Counts SharedFreeList::counts() const {
  // One 8-byte load: the counts change together with the list, so this
  // snapshot is consistent. relaxed: nothing else is read through it.
  const uint64_t tag = AtomicLoadN(&head_.tag, __ATOMIC_RELAXED);
  return Counts{AllocatedOf(tag), FreeOf(tag)};
}

}  // namespace poolguard::internal
