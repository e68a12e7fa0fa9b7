// Store buffers for the scheduled executor: x86's total store order over
// threads that a scheduler runs one at a time (pool/atomic.h says how the
// pools' atomics reach it). Independent of any backend and of the scheduler:
// the scheduler decides when a thread drains (fuzz/scheduled.cc), this says
// what each thread may see.
//
// A store writes memory at once and leaves an entry {address, size, the
// value it replaced} in its thread's buffer. Until the entry is drained,
// every other thread that loads the location sees the replaced value; the
// storing thread sees its own store. Draining a thread forgets all its
// entries, oldest first, as a store buffer empties into memory in order.
// Invariant: the entries for one location belong to one thread at most (a
// store or a locked instruction on a location drains every other thread with
// an entry for it first: any drain at any time is a behavior TSO allows).
//
// Memory freed while an entry names it: the scheduler drains a thread at
// each of its releases to the system (the pools' memory goes back through
// pool/system_memory.h), so the thread's own entries never outlive it; and
// in a correct backend no other thread's can name it then (a thread frees
// what another stored to only after seeing a later store of that thread,
// and entries drain oldest first). Memory a backend frees some other way is
// not covered.
//
// Called only by the thread the scheduler runs (the hand-offs order the
// calls); fields are relaxed atomics so that TSan, which does not see the
// hand-offs, sees no race in the model itself.

#ifndef POOLGUARD_FUZZ_STORE_BUFFERS_H_
#define POOLGUARD_FUZZ_STORE_BUFFERS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fuzz/op_program.h"

namespace poolguard::fuzz {

class StoreBuffers {
 public:
  // x86 cores buffer 50 or more stores; a thread of a fuzz program between
  // two drains makes a few. When a buffer is full its oldest entry drains.
  static constexpr size_t kCapacity = 32;

  StoreBuffers() = default;
  StoreBuffers(const StoreBuffers&) = delete;
  StoreBuffers& operator=(const StoreBuffers&) = delete;

  // Thread `me` stored `size` bytes at `address`, which held `old_bits`.
  void Store(size_t me, const void* address, size_t size, uint64_t old_bits);

  // Thread `me` loads `size` bytes at `address`: true, with *bits set, when
  // another thread's store to it is still buffered (*bits is the value from
  // before that thread's oldest buffered store to it). A load that overlaps
  // a buffered store of another size drains that store's thread instead.
  bool Load(size_t me, const void* address, size_t size, uint64_t* bits);

  // A locked instruction (or a seq_cst store) of thread `me` on [address,
  // address + size): drains `me`, and every thread with an entry there.
  void Locked(size_t me, const void* address, size_t size);

  // Drains thread `t`; returns true if it had anything buffered.
  bool Drain(size_t t);
  void DrainAll();

  size_t buffered(size_t t) const { return count_[t].load(std::memory_order_relaxed); }
  // Drains that made at least one store visible, since construction: a
  // thread that waits for another's store may find it after any of them.
  uint64_t drains() const { return drains_.load(std::memory_order_relaxed); }
  // Loads that saw an older value than memory held, since construction.
  uint64_t stale_loads() const { return stale_loads_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::atomic<uintptr_t> address{0};
    std::atomic<uint32_t> size{0};
    std::atomic<uint64_t> old_bits{0};
  };

  // The index of thread t's oldest entry overlapping the range, or -1, and
  // in *exact whether it covers exactly that range.
  int Oldest(size_t t, uintptr_t address, size_t size, bool* exact) const;
  // Drains every thread but `me` with an entry overlapping the range.
  void DrainOthersAt(size_t me, uintptr_t address, size_t size);

  // Thread t's entries, oldest first: entries_[t][0 .. count_[t]).
  Entry entries_[Program::kMaxThreads][kCapacity];
  std::atomic<size_t> count_[Program::kMaxThreads] = {};
  std::atomic<uint64_t> drains_{0};
  std::atomic<uint64_t> stale_loads_{0};
};

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_STORE_BUFFERS_H_
