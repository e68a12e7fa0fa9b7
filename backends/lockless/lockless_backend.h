// The `lockless` backend: HAProxy's lockless pool (2.1, the seed of this
// project) with the hole in its reasoning closed.
//
// Choose it when several threads share a pool and flushes or gcs must never
// hold up their allocations: Alloc() and Free() take no lock, and their only
// wait is on a claim, a window of three instructions (see below). Do not
// choose it for the lowest single-thread cost (every operation is a locked
// 16-byte CAS) or where `cmpxchg16b` is missing (x86-64 only here).
// Progress: not strictly lock-free. A thread preempted inside a claim stalls
// the pool's other Alloc()/Free() calls until it runs again, exactly as
// HAProxy's POOL_BUSY does; waiters yield the CPU to let it. Flush() and Gc()
// exclude each other with a spinlock that Alloc() and Free() never take.
//
// The head word, 16 bytes updated with one double-width CAS:
//
//   ptr  (64 bits)  first free object; nullptr when empty; kBusy while claimed
//   tag  (64 bits)  bits  0-31: free, the objects in the list
//                   bits 32-63: allocated, objects obtained from the system
//                               and not yet taken off for release
//
// Invariant: free <= allocated <= max_objects; when ptr is not kBusy, the list
// from ptr holds exactly `free` objects; while it is kBusy, the claimer owns
// the old first object and `free` already excludes it.
//
// The counts live in the head so that every change of the list and of the
// counts is one atomic step: Stats() reads one 8-byte word and is never torn,
// with no counter on the hot path. Where HAProxy's seed kept a sequence
// number there against ABA, the claim protocol below makes ABA harmless.

// The hole (HAProxy 899fb8abd, crash #1275): the seed's pop loaded {head, seq},
// read head->next, then CASed; a flush or gc could free the head between the
// load and the read. Here, a pop first *claims* the head by swapping in kBusy,
// and reads `next` only from the object it then owns. Who may release what:
//   - Only Flush() and Gc() release objects to the system, and only objects
//     they own: Flush() detaches the whole list with one CAS from a non-busy
//     head; Gc() claims objects one at a time exactly as Alloc() does.
//   - An object reachable from a non-busy head is owned by the list: no thread
//     reads its link, because every reader must first win the claim CAS.
//   - A claimed object belongs to its claimer alone until it stores the new
//     head. So no path reads the link of an object another thread can release.
// ABA: a thread that loaded {X, tag} and CASes later may find the same value
// after other threads took X and put it back. That is harmless here because
// no CAS acts on a `next` read before it: a claim reads X's link after it
// wins, a push links to X (the current head), and a flush takes the list as it
// is, with the counts the tag has at that instant.

#ifndef POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_
#define POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "pool/layout.h"
#include "pool/pool_types.h"
#include "pool/spinlock.h"

namespace poolguard::internal {

class LocklessBackend {
 public:
  static constexpr std::string_view kName = "lockless";
  // The free count has 32 bits.
  static constexpr size_t kMaxObjects = uint32_t{0xffffffff};

  explicit LocklessBackend(const PoolLayout& layout) : layout_(layout) {}
  // REQUIRES: no object of this pool is in use, and no call on it in flight.
  ~LocklessBackend() { Flush(); }

  LocklessBackend(const LocklessBackend&) = delete;
  LocklessBackend& operator=(const LocklessBackend&) = delete;

  void* Alloc();
  // REQUIRES: object came from this pool's Alloc() and is not free.
  void Free(void* object);
  void Flush() ABSL_LOCKS_EXCLUDED(flush_lock_);
  void Gc() ABSL_LOCKS_EXCLUDED(flush_lock_);
  PoolStats Stats() const;

 private:
  // The head as a value. 16-byte aligned: cmpxchg16b faults otherwise.
  struct alignas(16) Head {
    void* ptr;
    uint64_t tag;
  };

  // The `ptr` that marks a claimed head. Never a valid object address: objects
  // are at least pointer-aligned.
  static inline void* const kBusy = reinterpret_cast<void*>(uintptr_t{1});

  static constexpr uint64_t kFreeOne = 1;
  static constexpr uint64_t kAllocatedOne = uint64_t{1} << 32;

  static size_t FreeOf(uint64_t tag) { return static_cast<uint32_t>(tag); }
  static size_t AllocatedOf(uint64_t tag) { return tag >> 32; }

  // Loads the head with two 8-byte loads (a 16-byte atomic load would be a
  // locked cmpxchg16b on x86). The pair may be torn; every user only passes it
  // to CasHead(), which then fails and returns a coherent value.
  Head LoadHead() const;
  // The double-width CAS. On failure, `expected` receives the current head.
  bool CasHead(Head& expected, Head desired, int success_order);

  // Waits while the head is claimed; returns a non-busy head.
  Head LoadUnclaimedHead() const;
  // Takes the first free object off the list, subtracting `tag_delta` from the
  // tag in the same CAS, or returns nullptr if the list is empty.
  void* PopFromShared(uint64_t tag_delta);
  void PushToShared(void* object);
  // Obtains a new object from the system, within max_objects.
  void* AllocFromSystem();

  const PoolLayout& layout_;

  // Read and written only with the __atomic builtins: 16-byte CAS on the whole
  // word, 8-byte loads of each half, and the 8-byte release store of `ptr`
  // that ends a claim. On its own cache line: it is the one every thread hits.
  alignas(64) Head head_ = {nullptr, 0};

  // Alloc() calls that returned nullptr. relaxed: a statistic.
  alignas(64) std::atomic<size_t> failed_{0};
  // Makes Flush() and Gc() exclusive (each with itself and with the other).
  // Alloc() and Free() never take it. With the claim protocol none of them can
  // release an object another owns, so this lock is not what keeps memory safe;
  // it keeps Gc() exact: two Gc() calls that each read "count > min_free" and
  // then claim would together release below min_free.
  SpinLock flush_lock_;
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_LOCKLESS_LOCKLESS_BACKEND_H_
