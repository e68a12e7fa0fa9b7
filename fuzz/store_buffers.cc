#include "fuzz/store_buffers.h"

namespace poolguard::fuzz {
namespace {

bool Overlap(uintptr_t a, size_t a_size, uintptr_t b, size_t b_size) {
  return a < b + b_size && b < a + a_size;
}

}  // namespace

int StoreBuffers::Oldest(size_t t, uintptr_t address, size_t size, bool* exact) const {
  const size_t n = count_[t].load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    const uintptr_t entry_address = entries_[t][i].address.load(std::memory_order_relaxed);
    const size_t entry_size = entries_[t][i].size.load(std::memory_order_relaxed);
    if (Overlap(entry_address, entry_size, address, size)) {
      *exact = entry_address == address && entry_size == size;
      return static_cast<int>(i);
    }
  }
  return -1;
}

void StoreBuffers::DrainOthersAt(size_t me, uintptr_t address, size_t size) {
  for (size_t t = 0; t < Program::kMaxThreads; ++t) {
    bool exact;
    if (t != me && Oldest(t, address, size, &exact) >= 0) Drain(t);
  }
}

void StoreBuffers::Store(size_t me, const void* address, size_t size, uint64_t old_bits) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  DrainOthersAt(me, at, size);
  size_t n = count_[me].load(std::memory_order_relaxed);
  if (n == kCapacity) {  // the oldest drains
    for (size_t i = 1; i < n; ++i) {
      Entry& to = entries_[me][i - 1];
      const Entry& from = entries_[me][i];
      to.address.store(from.address.load(std::memory_order_relaxed), std::memory_order_relaxed);
      to.size.store(from.size.load(std::memory_order_relaxed), std::memory_order_relaxed);
      to.old_bits.store(from.old_bits.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    --n;
    drains_.store(drains_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  Entry& entry = entries_[me][n];
  entry.address.store(at, std::memory_order_relaxed);
  entry.size.store(static_cast<uint32_t>(size), std::memory_order_relaxed);
  entry.old_bits.store(old_bits, std::memory_order_relaxed);
  count_[me].store(n + 1, std::memory_order_relaxed);
}

bool StoreBuffers::Load(size_t me, const void* address, size_t size, uint64_t* bits) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  for (size_t t = 0; t < Program::kMaxThreads; ++t) {
    if (t == me) continue;
    bool exact;
    const int i = Oldest(t, at, size, &exact);
    if (i < 0) continue;
    if (!exact) {
      Drain(t);
      continue;
    }
    *bits = entries_[t][i].old_bits.load(std::memory_order_relaxed);
    stale_loads_.store(stale_loads_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;  // (no other thread has an entry here: the invariant)
  }
  return false;
}

void StoreBuffers::Locked(size_t me, const void* address, size_t size) {
  Drain(me);
  DrainOthersAt(me, reinterpret_cast<uintptr_t>(address), size);
}

bool StoreBuffers::Drain(size_t t) {
  if (count_[t].load(std::memory_order_relaxed) == 0) return false;
  count_[t].store(0, std::memory_order_relaxed);
  drains_.store(drains_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return true;
}

void StoreBuffers::DrainAll() {
  for (size_t t = 0; t < Program::kMaxThreads; ++t) Drain(t);
}

}  // namespace poolguard::fuzz
