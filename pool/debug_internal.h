// The debug header before each object (debug builds only; pool/debug.h).

#ifndef POOLGUARD_POOL_DEBUG_INTERNAL_H_
#define POOLGUARD_POOL_DEBUG_INTERNAL_H_

#include <cstddef>
#include <cstdint>

namespace poolguard {
class Pool;

namespace internal {

// Slot layout in debug mode: [DebugHeader, padded to the alignment][object].
// Every field is read and written only with __atomic builtins (pool/debug.cc,
// relaxed but for `state`): a double free races with the free it repeats,
// and a stale pointer's free with the next Alloc() of its object, so a
// report may read a field while another thread writes it. The state
// transitions (kLive -> kFree by CAS, kFree -> kLive by the Alloc() that owns
// the object) order what matters; a report's call sites are each read whole,
// though they may mix two calls' sites. Builtins rather than std::atomic: the
// reads of a header another thread may be poisoning for ASan at that moment
// (a backend poisons a free slot whole) are made without ASan's checks, and
// a builtin is compiled into the function that uses it.
struct DebugHeader {
  // The backend's free-list link lives in a slot's first word while the
  // object is free.
  void* link;
  // kLive or kFree; anything else: not an object of any pool. Within the
  // kScrubOnRelease bytes that ReleaseToSystem() zeroes.
  uint64_t state;
  const Pool* pool;
  const char* alloc_file;
  const char* free_file;
  int alloc_line;
  int free_line;
};

inline constexpr uint64_t kDebugLive = 0x4c495645706f6f6cu;  // "loopEVIL"
inline constexpr uint64_t kDebugFree = 0x46524545706f6f6cu;  // "loopEERF"

// Bytes from a slot's start to its object: the header rounded up to the
// alignment (a power of two).
constexpr size_t DebugHeaderSize(size_t alignment) {
  return (sizeof(DebugHeader) + alignment - 1) & ~(alignment - 1);
}

}  // namespace internal
}  // namespace poolguard

#endif  // POOLGUARD_POOL_DEBUG_INTERNAL_H_
