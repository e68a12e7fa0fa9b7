// SharedFreeList: the lockless backend's free list, which the tlcache backend
// also uses as its shared level. HAProxy's lockless pool (2.1, the seed of
// this project) with the hole in its reasoning closed, and the counts of the
// pool kept in the list's head.
//
// The head, 16 bytes:
//
//   ptr  (64 bits)  first free object; nullptr when empty; kBusy while claimed
//   tag  (64 bits)  bits  0-31: free, the objects in the list
//                   bits 32-63: allocated, objects obtained from the system
//                               and not yet taken off for release
//
// Invariant: free <= allocated; when ptr is not kBusy, the list from ptr holds
// exactly `free` objects. The counts live in the head so that every change of
// the list and of the counts is one atomic step: counts() reads one 8-byte
// word and is never torn, with no counter of its own on the hot path.
//
// The hole (HAProxy 899fb8abd, crash #1275): the seed's pop loaded {head, seq},
// read head->next, then CASed; a flush or gc could free the head between the
// load and the read. Here a pop first *claims* the list, by exchanging kBusy
// into `ptr` (HAProxy's POOL_BUSY, 2a4523f6f), and reads links only while it
// holds the claim. Who may release what:
//   - Only a pool's Flush() and Gc() (and its destruction) release objects to
//     the system, and only objects they took off this list:
//     TakeAllToRelease() detaches the whole list in one CAS from a non-busy
//     head; PopSurplusToRelease() claims like any pop.
//   - An object reachable from a non-busy head is owned by the list: no thread
//     reads its link, because every reader must first win the claim.
//   - While the head is kBusy the whole list belongs to the claimer: every
//     other pop waits for the claim to end, and every CAS (push, reserve,
//     detach) fails, because each expects a non-busy ptr. So no path reads the
//     link of an object another thread can release, and the claimer alone
//     writes `tag` until it ends the claim.
// ABA: a pusher or reserver that loaded {X, tag} and CASes later may find the
// same value after other threads took X and put it back. That is harmless
// because no CAS here acts on a `next` read before it: a claim reads links
// after it wins, a push links to X (the current head, whatever happened
// before), and a detach takes the list as it is, with the counts the tag has
// at that instant.
//
// Progress: not strictly lock-free. A thread preempted while it holds a claim
// stalls the list's other users until it runs again, exactly as HAProxy's
// POOL_BUSY does; they yield the CPU to let it. A claim lasts a few
// instructions (a batch pop: a walk of up to the batch's links).
//
// Pop() and Push() are inline, below the class: they are the whole of the
// lockless backend's Alloc() and Free(), and a call each way costs it about
// 15%. The rest is out of line in shared_free_list.cc.
//
// x86-64 only: the CAS is cmpxchg16b, written out in inline assembly as
// HAProxy's __ha_cas_dw() does, so that code including this header needs no
// -mcx16. ThreadSanitizer builds must pass -mcx16 (the .bazelrc configs do):
// TSan sees only the __atomic builtin, which without it becomes a libatomic
// call that TSan does not instrument.

#ifndef POOLGUARD_BACKENDS_COMMON_SHARED_FREE_LIST_H_
#define POOLGUARD_BACKENDS_COMMON_SHARED_FREE_LIST_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/base/optimization.h"
#include "pool/atomic.h"
#include "pool/sched_point.h"
#include "pool/system_memory.h"

#if !defined(__x86_64__)
#error "SharedFreeList needs a 16-byte CAS; only x86-64 (cmpxchg16b) is supported"
#endif
#if defined(ABSL_HAVE_THREAD_SANITIZER) && !defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
#error "poolguard under ThreadSanitizer needs -mcx16, or TSan cannot see its 16-byte CAS"
#endif

namespace poolguard::internal {

class SharedFreeList {
 public:
  // The free and allocated counts have 32 bits each.
  static constexpr size_t kMaxObjects = uint32_t{0xffffffff};

  struct Counts {
    size_t allocated;
    size_t free;
  };

  SharedFreeList() = default;
  SharedFreeList(const SharedFreeList&) = delete;
  SharedFreeList& operator=(const SharedFreeList&) = delete;

  // Takes the first free object off the list; nullptr when it is empty.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Pop();
  // Takes up to `want` (>= 1) objects into out[]; returns how many (0: empty).
  size_t PopBatch(void** out, size_t want);
  // Takes up to `max` (>= 1) objects into out[], but leaves at least `keep`
  // on the list, and uncounts them from `allocated` in the same step: for
  // objects the caller releases to the system (Gc() down to min_free).
  // Returns how many.
  size_t PopSurplusToRelease(void** out, size_t max, size_t keep);

  // Puts one object on the list. Its first word becomes its link.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(void* object) { PushChainInline(object, object, 1); }
  // Puts the chain first..last, `n` objects already linked, on the list.
  void PushChain(void* first, void* last, size_t n);

  // Counts one more object obtained from the system, unless `max_objects`
  // are counted already: then returns false. Callers reserve before they ask
  // the system, so concurrent callers cannot overshoot.
  bool ReserveAllocated(size_t max_objects);
  // Takes back a reservation whose request the system refused.
  void UnreserveAllocated();

  // Detaches the whole list and uncounts it from `allocated`; returns the
  // chain (linked through first words, ending in nullptr), now the caller's
  // alone to release.
  void* TakeAllToRelease();

  // fork(): claims the list across the fork (waiting for a claim in
  // progress), so that the child inherits none; the claim ends after it, in
  // the parent and in the child. Only the forking thread calls these.
  void LockForFork();
  void UnlockAfterFork();

  // One snapshot of the counts: never torn, exact when nothing runs.
  Counts counts() const;

 private:
  // The head as a value. 16-byte aligned: cmpxchg16b faults otherwise.
  struct alignas(16) Head {
    void* ptr;
    uint64_t tag;
  };

  static constexpr uint64_t kFreeOne = 1;
  static constexpr uint64_t kAllocatedOne = uint64_t{1} << 32;
  static size_t FreeOf(uint64_t tag) { return static_cast<uint32_t>(tag); }
  static size_t AllocatedOf(uint64_t tag) { return tag >> 32; }

  // The `ptr` of a claimed head. Never an object address: objects are at
  // least pointer-aligned.
  static inline void* const kBusy = reinterpret_cast<void*>(uintptr_t{1});

  ABSL_ATTRIBUTE_ALWAYS_INLINE Head LoadHead() const;
  // LoadHead(), waiting while the list is claimed; returns a non-busy head.
  ABSL_ATTRIBUTE_ALWAYS_INLINE Head LoadUnclaimedHead() const;
  // Its wait, out of line: the hot paths stay small.
  ABSL_ATTRIBUTE_NOINLINE Head WaitUnclaimedHead() const;
  // The 16-byte CAS of the head. On failure `expected` receives the current
  // head. `success_order` documents the ordering each caller needs; on x86 a
  // locked instruction is a full barrier whatever it says.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool CasHead(Head& expected, Head desired, int success_order);
  // Claims the list; returns its first object (nullptr: the list is empty,
  // and claimed all the same). The caller ends the claim with EndClaim().
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Claim();
  // Ends a claim: the list now starts at `first` and the counts are `tag`.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void EndClaim(void* first, uint64_t tag);
  // Claims, takes min(want, free - keep) objects (none if free <= keep),
  // subtracts tag_delta per object from the tag, and ends the claim.
  ABSL_ATTRIBUTE_ALWAYS_INLINE size_t ClaimAndPop(void** out, size_t want, size_t keep,
                                                  uint64_t tag_delta);
  // PushChain()'s body, inlined into Push() and PushChain().
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushChainInline(void* first, void* last, size_t n);

  // Read and written only atomically: the 16-byte CAS on the whole word;
  // 8-byte loads of each half; the claim's 8-byte exchange on `ptr`; and the
  // claimer's 8-byte stores that end it. On its own cache line: it is the
  // one every thread hits.
  alignas(64) Head head_ = {nullptr, 0};
  // What LockForFork() found, for UnlockAfterFork(); the forking thread's.
  void* fork_first_ = nullptr;
  uint64_t fork_tag_ = 0;
};

// ---------------------------------------------------------------------------
// The hot path, inline.

inline SharedFreeList::Head SharedFreeList::LoadHead() const {
  POOLGUARD_SCHED_POINT(kLoadHead);
  // Two 8-byte loads (a 16-byte atomic load would be a locked cmpxchg16b).
  // relaxed: the pair, possibly torn, is only a guess for the next CasHead(),
  // which carries the ordering. A torn guess (tag and ptr from two moments)
  // usually fails the CAS; it may succeed if the head happens to hold exactly
  // that pair when the CAS runs, and that is harmless: every CAS here
  // computes its new head from the expected value alone, so success means
  // the head was that value, however the guess was made. Reading tag first,
  // as HAProxy does, makes a torn pair more likely to fail early.
  Head head;
  head.tag = AtomicLoadN(&head_.tag, __ATOMIC_RELAXED);
  head.ptr = AtomicLoadN(&head_.ptr, __ATOMIC_RELAXED);
  return head;
}

inline SharedFreeList::Head SharedFreeList::LoadUnclaimedHead() const {
  const Head head = LoadHead();
  if (ABSL_PREDICT_TRUE(head.ptr != kBusy)) return head;
  return WaitUnclaimedHead();
}

inline bool SharedFreeList::CasHead(Head& expected, Head desired, int success_order) {
  POOLGUARD_SCHED_POINT(kCas);
  BeforeLockedInstruction(&head_, sizeof(head_));
#if defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
  // -mcx16 (always so under TSan): the builtin, which TSan instruments.
  // Failure is relaxed: the returned value is again only a guess for a retry.
  auto* word = reinterpret_cast<unsigned __int128*>(&head_);
  unsigned __int128 current;
  __builtin_memcpy(&current, &expected, 16);
  unsigned __int128 replacement;
  __builtin_memcpy(&replacement, &desired, 16);
  if (__atomic_compare_exchange_n(word, &current, replacement, /*weak=*/false, success_order,
                                  __ATOMIC_RELAXED)) {
    return true;
  }
  __builtin_memcpy(&expected, &current, 16);
  return false;
#else
  // rdx:rax holds the expected head and receives the current one on failure;
  // rcx:rbx holds the replacement. The "memory" clobber keeps the compiler
  // from moving memory accesses across it, as the builtin's ordering would.
  static_cast<void>(success_order);
  bool swapped;
  __asm__ __volatile__("lock cmpxchg16b %1"
                       : "=@ccz"(swapped), "+m"(head_), "+a"(expected.ptr), "+d"(expected.tag)
                       : "b"(desired.ptr), "c"(desired.tag)
                       : "memory");
  return swapped;
#endif
}

inline void* SharedFreeList::Claim() {
#if defined(ABSL_HAVE_THREAD_SANITIZER)
  // ThreadSanitizer runs 16-byte atomics under a lock of its own, with plain
  // loads and stores (compiler-rt, tsan_interface_atomic.cpp: mutex128), so
  // they are not atomic against a native 8-byte exchange: a push's CAS could
  // overwrite a claim. Under TSan the claim is therefore the same 16-byte CAS
  // as every other step, {X, tag} -> {kBusy, tag}, with the same acquire;
  // what follows it is the same code.
  Head head = LoadUnclaimedHead();
  while (!CasHead(head, Head{kBusy, head.tag}, __ATOMIC_ACQUIRE)) {
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
  return head.ptr;
#else
  for (;;) {
    POOLGUARD_SCHED_POINT(kCas);
    // acquire: pairs with the release of whoever set `ptr` last (a push's
    // 16-byte CAS, or the store that ended the previous claim), so the first
    // object's link and the tag are visible. The links further down were
    // written before earlier pushes and claim ends; they are visible too, but
    // not by a C++ release sequence: this 8-byte exchange and a push's 16-byte
    // CAS are accesses to different objects, which the C++ model does not
    // relate. It holds by x86-TSO: stores become visible in program order,
    // every locked instruction is a full barrier, and a load that sees a
    // store sees every store that preceded it in that store's thread, and
    // (transitively, through the locked steps that chain the pushes) in
    // every thread whose pushes came before.
    void* first = AtomicExchangeN(&head_.ptr, kBusy, __ATOMIC_ACQUIRE);
    if (ABSL_PREDICT_TRUE(first != kBusy)) return first;
    // Another thread holds a claim; exchanging kBusy for kBusy changed
    // nothing. Wait for its end with plain loads (more exchanges would take
    // the line away from the claimer for nothing), then try again.
    WaitUnclaimedHead();
  }
#endif
}

inline void SharedFreeList::EndClaim(void* first, uint64_t tag) {
  POOLGUARD_SCHED_POINT(kStoreHead);
  // While the head is kBusy every CAS fails (each expects a non-busy ptr) and
  // every other claimer waits, so the claimer alone writes the head, and plain
  // 8-byte stores are race-free. tag first, relaxed: the release store of ptr
  // publishes it. ptr, release: publishes the new tag, the objects' removal
  // and the chain of links below `first` to the next claimer (whether its
  // claim is the 8-byte exchange or, under TSan, the 16-byte CAS: on x86 the
  // ordering is TSO's, as the comment in Claim() says).
  AtomicStoreN(&head_.tag, tag, __ATOMIC_RELAXED);
  AtomicStoreN(&head_.ptr, first, __ATOMIC_RELEASE);
}

inline size_t SharedFreeList::ClaimAndPop(void** out, size_t want, size_t keep,
                                          uint64_t tag_delta) {
  void* object = Claim();
  // The list is ours: no other thread can reach any of its objects, and only
  // Flush() and Gc() release objects, after taking them off the list.
  // relaxed: the claim's acquire made the last tag visible, and it cannot
  // change under us.
  const uint64_t tag = AtomicLoadN(&head_.tag, __ATOMIC_RELAXED);
  if (ABSL_PREDICT_FALSE(object == nullptr)) {
#if defined(POOLGUARD_MUTANT_EMPTY_PATH_KEEPS_LOCK)
    // SEEDED BUG (fuzz/mutants/README.md), after HAProxy 1c7c0d6b9: the pop
    // claims the list before looking (as this one does), and its empty-pool
    // return forgets to end the claim: the head stays kBusy and every later
    // pop, push and flush waits forever.
    static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
    return 0;
#endif
    EndClaim(nullptr, tag);
    return 0;
  }
  // The list holds exactly FreeOf(tag) >= 1 objects: walking n <= free links
  // stays inside it. (The assumption lets Pop(), with want == 1 and
  // keep == 0, compile to a single step.)
  const size_t free = FreeOf(tag);
  ABSL_ASSUME(free >= 1);
  const size_t n = free > keep ? (want < free - keep ? want : free - keep) : 0;
  for (size_t i = 0; i < n; ++i) {
    out[i] = object;
    POOLGUARD_SCHED_POINT(kReadNext);
    object = ReadLink(object);
  }
  EndClaim(object, tag - n * tag_delta);
  return n;
}

inline void* SharedFreeList::Pop() {
#if defined(POOLGUARD_MUTANT_SEED_ALLOC_READS_FREED_HEAD)
  // SEEDED BUG (fuzz/mutants/README.md): the seed's pop, HAProxy 899fb8abd.
  // It reads the link of a head it does not own, then CASes; a concurrent
  // Flush() or Gc() may have released that head in between.
  static_assert(POOLGUARD_FUZZ_BUILD_ENABLED, "mutants exist only in fuzz builds");
  for (Head seed_head = LoadUnclaimedHead();;) {
    if (seed_head.ptr == nullptr) return nullptr;
    POOLGUARD_SCHED_POINT(kReadNext);
    void* next = ReadLink(seed_head.ptr);
    if (CasHead(seed_head, Head{next, seed_head.tag - kFreeOne}, __ATOMIC_ACQUIRE)) {
      return seed_head.ptr;
    }
    if (seed_head.ptr == kBusy) seed_head = LoadUnclaimedHead();
  }
#endif
  void* object;
  return ClaimAndPop(&object, 1, /*keep=*/0, kFreeOne) == 1 ? object : nullptr;
}

inline void SharedFreeList::PushChainInline(void* first, void* last, size_t n) {
  Head head = LoadUnclaimedHead();
  for (;;) {
    WriteLink(last, head.ptr);
    // {H, tag} -> {first, free + n}. release: publishes the links just
    // written (and the objects' memory) to whoever claims them. Never lands
    // on a claimed head: the expected ptr is never kBusy, so such a CAS fails
    // (the claimer's closing store would otherwise overwrite the push). On
    // failure the head moved: relink to the new head and retry.
    if (CasHead(head, Head{first, head.tag + n * kFreeOne}, __ATOMIC_RELEASE)) return;
    if (head.ptr == kBusy) head = LoadUnclaimedHead();
  }
}

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_COMMON_SHARED_FREE_LIST_H_
