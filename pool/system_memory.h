// The system memory layer: every block a backend obtains from or gives back to
// the system goes through these two functions, and nothing else in a backend
// calls malloc or free.
//
// Release is a real free(): under AddressSanitizer any later access to the
// block is a heap-use-after-free report, not luck. The same layer holds the
// ASan poisoning helpers for objects that sit in a free list.

#ifndef POOLGUARD_POOL_SYSTEM_MEMORY_H_
#define POOLGUARD_POOL_SYSTEM_MEMORY_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/functional/function_ref.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOLGUARD_ASAN 1
#endif
#endif
#if !defined(POOLGUARD_ASAN) && defined(__SANITIZE_ADDRESS__)
#define POOLGUARD_ASAN 1
#endif
// UAF mode gives each object pages of its own and unmaps them on release, so
// the page protection does what poisoning does, and ASan's ownership test
// (which knows only its own heap) would refuse to unpoison links in them.
#if defined(POOLGUARD_UAF) && defined(POOLGUARD_ASAN)
#undef POOLGUARD_ASAN
#endif

#if defined(POOLGUARD_ASAN)
#include <sanitizer/allocator_interface.h>
#include <sanitizer/asan_interface.h>
#endif

namespace poolguard::internal {

// Returns `size` bytes aligned to `alignment` (a power of two, and `size` a
// multiple of it), or nullptr when the system has no memory.
void* AllocateFromSystem(size_t size, size_t alignment);

// Gives back a block from AllocateFromSystem() with the same size and alignment.
void ReleaseToSystem(void* block, size_t size, size_t alignment);

// fork() (pool/registry.cc, in its documented order). CloseSystemForFork():
// no new request may start (they wait) and the ones in flight finish, so that
// the child inherits no half-done malloc() or free() of ours; the forking
// thread itself still passes. LockSystemLeavesForFork(): the locks taken
// outside requests (failure injection's, debug mode's block set), last.
void CloseSystemForFork();
void OpenSystemAfterFork();
void LockSystemLeavesForFork();
void UnlockSystemLeavesAfterFork();

#if defined(POOLGUARD_DEBUG)
// Debug builds keep the set of blocks currently obtained from the system, so
// that the Pool layer can tell a pointer it handed out from any other before
// reading memory near it. Runs fn() and returns true if `block` is such a
// block; fn runs under the set's lock, so the block cannot be released
// meanwhile. fn must not allocate from or release to the system.
bool WithLiveSystemBlock(const void* block, absl::FunctionRef<void()> fn);
// Bytes at the start of a block that ReleaseToSystem() zeroes before giving
// the block back, so that a later block at the same address never looks like
// one the Pool layer marked.
inline constexpr size_t kScrubOnRelease = 16;
#endif

// ASan: makes a whole free object inaccessible while it sits in a free list.
inline void PoisonObject(void* object, size_t size) {
#if defined(POOLGUARD_ASAN)
  ASAN_POISON_MEMORY_REGION(object, size);
#endif
}

#if defined(POOLGUARD_ASAN)
// How many of the `want` bytes at `object` belong to the live system block
// that starts there (every object is a block of its own from
// AllocateFromSystem under ASan): 0 once the block went back to the system,
// and never past its end. Unpoisoning only those keeps ASan precise: a
// released object stays as ASan marked it (a read of its link is
// heap-use-after-free, not silently unpoisoned), and a slot too small for
// what the pool stores in it (a link in a 1-byte slot) is a
// heap-buffer-overflow rather than a write into an unpoisoned redzone.
inline size_t LiveBytesAt(void* object, size_t want) {
  if (!__sanitizer_get_ownership(object)) return 0;
  const size_t size = __sanitizer_get_allocated_size(object);
  return size < want ? size : want;
}
#endif

// ASan: makes an object accessible again as it leaves the pool for its user.
inline void UnpoisonObject(void* object, size_t size) {
#if defined(POOLGUARD_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(object, LiveBytesAt(object, size));
#endif
}

#if defined(POOLGUARD_ASAN)
// Unpoisons the link word, as far as it lies in the object's live block.
inline void UnpoisonLinkIfLive(void* object) {
  ASAN_UNPOISON_MEMORY_REGION(object, LiveBytesAt(object, sizeof(void*)));
}
#endif

// The link of a free object is its first word. Reading or writing it
// unpoisons that word only; the rest of the object stays poisoned.
inline void* ReadLink(void* object) {
#if defined(POOLGUARD_ASAN)
  UnpoisonLinkIfLive(object);
#endif
  return *static_cast<void**>(object);
}

inline void WriteLink(void* object, void* next) {
#if defined(POOLGUARD_ASAN)
  UnpoisonLinkIfLive(object);
#endif
  *static_cast<void**>(object) = next;
}

}  // namespace poolguard::internal

#endif  // POOLGUARD_POOL_SYSTEM_MEMORY_H_
