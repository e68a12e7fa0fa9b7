// The atomics the pools are written with, and the hook through which a
// scheduler can make them behave as x86's weaker memory does.
//
// In production builds `Atomic<T>` is `std::atomic<T>`, ThreadFence() is
// std::atomic_thread_fence() and the other functions are the __atomic
// builtins: the object code is the same as written with those.
//
// In the scheduled fuzz variant (POOLGUARD_SCHEDULE_POINTS, beside the
// schedule points of pool/sched_point.h) every access also tells a memory
// model, when a scheduler installed one (SetMemoryModel()). A scheduler runs
// one thread at a time, which by itself is sequentially consistent: it can
// never show a bug that needs a store to stay invisible to other threads
// while its own thread reads on (store buffering, x86's one reordering:
// Dekker's handshake without its fence). The model adds that. A store that
// is not seq_cst writes memory at once, and the model records the value it
// replaced: until the storing thread drains (a locked instruction, a seq_cst
// store or fence, a process-wide barrier, or whenever the scheduler drains
// it), loads of that location by *other* threads return the replaced value.
// That is total store order exactly: each thread sees its own stores at once,
// every other thread sees them later, in the order they were made, all at
// the same time. Loads, acquire/release orders and non-seq_cst fences cost
// nothing on x86 and reorder nothing more there, so they change nothing in
// the model either.
//
// Every shared word of the backends goes through here; a location accessed
// both through this header and around it would see two histories.

#ifndef POOLGUARD_POOL_ATOMIC_H_
#define POOLGUARD_POOL_ATOMIC_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace poolguard::internal {

#if defined(POOLGUARD_SCHEDULE_POINTS)

// A memory model's entry points, each called by the thread doing the access.
struct MemoryModel {
  // A store (not seq_cst) of `size` bytes at `address` replaced `old_bits`.
  void (*store)(const void* address, size_t size, uint64_t old_bits);
  // A load of `size` bytes at `address`: true, with *bits set, when the
  // calling thread must see an older value than memory holds.
  bool (*load)(const void* address, size_t size, uint64_t* bits);
  // A locked instruction (or a seq_cst store) on [address, address + size):
  // drains the calling thread, and whatever other thread has a store to it.
  void (*locked)(const void* address, size_t size);
  // A full fence of the calling thread: drains it.
  void (*fence)();
  // A process-wide barrier (membarrier()) came back done: drains every thread.
  void (*process_barrier)();
};

// relaxed: installed before the threads it models start, removed after they
// are joined (thread creation and join order it); read at every access.
inline std::atomic<const MemoryModel*> g_memory_model{nullptr};

inline void SetMemoryModel(const MemoryModel* model) {
  g_memory_model.store(model, std::memory_order_relaxed);
}

inline const MemoryModel* ActiveMemoryModel() {
  return g_memory_model.load(std::memory_order_relaxed);
}

template <typename T>
inline uint64_t ToBits(T value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
inline T FromBits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

// std::atomic<T>'s interface, as far as the pools use it, through the model.
template <typename T>
class Atomic {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t),
                "the memory model keeps values of at most 8 bytes");

 public:
  Atomic() noexcept = default;
  constexpr Atomic(T value) noexcept : raw_(value) {}  // NOLINT: as std::atomic
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
    T value = raw_.load(order);
    if (const MemoryModel* model = ActiveMemoryModel()) {
      uint64_t bits;
      if (model->load(&raw_, sizeof(T), &bits)) value = FromBits<T>(bits);
    }
    return value;
  }

  void store(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
    const MemoryModel* model = ActiveMemoryModel();
    if (model == nullptr) {
      raw_.store(value, order);
    } else if (order == std::memory_order_seq_cst) {  // xchg on x86: locked
      model->locked(&raw_, sizeof(T));
      raw_.store(value, order);
    } else {
      const T old = raw_.load(std::memory_order_relaxed);
      raw_.store(value, order);
      model->store(&raw_, sizeof(T), ToBits(old));
    }
  }

  T exchange(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
    Locked();
    return raw_.exchange(value, order);
  }

  bool compare_exchange_strong(T& expected, T desired,
                               std::memory_order order = std::memory_order_seq_cst) noexcept {
    Locked();  // lock cmpxchg: locked whether it succeeds or not
    return raw_.compare_exchange_strong(expected, desired, order);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                               std::memory_order failure) noexcept {
    Locked();
    return raw_.compare_exchange_strong(expected, desired, success, failure);
  }
  bool compare_exchange_weak(T& expected, T desired,
                             std::memory_order order = std::memory_order_seq_cst) noexcept {
    Locked();
    return raw_.compare_exchange_weak(expected, desired, order);
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                             std::memory_order failure) noexcept {
    Locked();
    return raw_.compare_exchange_weak(expected, desired, success, failure);
  }

  template <typename U = T, typename = std::enable_if_t<std::is_integral_v<U>>>
  T fetch_add(T delta, std::memory_order order = std::memory_order_seq_cst) noexcept {
    Locked();
    return raw_.fetch_add(delta, order);
  }
  template <typename U = T, typename = std::enable_if_t<std::is_integral_v<U>>>
  T fetch_sub(T delta, std::memory_order order = std::memory_order_seq_cst) noexcept {
    Locked();
    return raw_.fetch_sub(delta, order);
  }

 private:
  void Locked() {
    if (const MemoryModel* model = ActiveMemoryModel()) model->locked(&raw_, sizeof(T));
  }

  std::atomic<T> raw_;
};

inline void ThreadFence(std::memory_order order) {
  std::atomic_thread_fence(order);
  if (order != std::memory_order_seq_cst) return;  // no instruction on x86
  if (const MemoryModel* model = ActiveMemoryModel()) model->fence();
}

inline void ProcessWideBarrierDone() {
  if (const MemoryModel* model = ActiveMemoryModel()) model->process_barrier();
}

// Locations that are not Atomic<T> (the shared free list's 16-byte head):
// the __atomic builtins, through the model.
template <typename T>
inline T AtomicLoadN(const T* address, int order) {
  T value = __atomic_load_n(address, order);
  if (const MemoryModel* model = ActiveMemoryModel()) {
    uint64_t bits;
    if (model->load(address, sizeof(T), &bits)) value = FromBits<T>(bits);
  }
  return value;
}

template <typename T>
inline void AtomicStoreN(T* address, T value, int order) {
  const MemoryModel* model = ActiveMemoryModel();
  if (model == nullptr) {
    __atomic_store_n(address, value, order);
  } else if (order == __ATOMIC_SEQ_CST) {
    model->locked(address, sizeof(T));
    __atomic_store_n(address, value, order);
  } else {
    const T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    __atomic_store_n(address, value, order);
    model->store(address, sizeof(T), ToBits(old));
  }
}

template <typename T>
inline T AtomicExchangeN(T* address, T value, int order) {
  if (const MemoryModel* model = ActiveMemoryModel()) model->locked(address, sizeof(T));
  return __atomic_exchange_n(address, value, order);
}

template <typename T>
inline bool AtomicCompareExchangeN(T* address, T* expected, T desired, bool weak, int success,
                                   int failure) {
  if (const MemoryModel* model = ActiveMemoryModel()) model->locked(address, sizeof(T));
  return __atomic_compare_exchange_n(address, expected, desired, weak, success, failure);
}

// Before a locked instruction written out by hand (inline assembly) or an
// __atomic read-modify-write on [address, address + size).
inline void BeforeLockedInstruction(const void* address, size_t size) {
  if (const MemoryModel* model = ActiveMemoryModel()) model->locked(address, size);
}

#else  // !POOLGUARD_SCHEDULE_POINTS

template <typename T>
using Atomic = std::atomic<T>;

inline void ThreadFence(std::memory_order order) { std::atomic_thread_fence(order); }
inline void ProcessWideBarrierDone() {}

template <typename T>
inline T AtomicLoadN(const T* address, int order) {
  return __atomic_load_n(address, order);
}
template <typename T>
inline void AtomicStoreN(T* address, T value, int order) {
  __atomic_store_n(address, value, order);
}
template <typename T>
inline T AtomicExchangeN(T* address, T value, int order) {
  return __atomic_exchange_n(address, value, order);
}
template <typename T>
inline bool AtomicCompareExchangeN(T* address, T* expected, T desired, bool weak, int success,
                                   int failure) {
  return __atomic_compare_exchange_n(address, expected, desired, weak, success, failure);
}
inline void BeforeLockedInstruction(const void*, size_t) {}

#endif  // POOLGUARD_SCHEDULE_POINTS

}  // namespace poolguard::internal

#endif  // POOLGUARD_POOL_ATOMIC_H_
