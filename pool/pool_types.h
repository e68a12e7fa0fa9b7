// Value types of the pool API. Include "pool/pool.h" instead of this header;
// it lives apart only so that backends can return PoolStats without a cycle.

#ifndef POOLGUARD_POOL_POOL_TYPES_H_
#define POOLGUARD_POOL_POOL_TYPES_H_

#include <cstddef>
#include <string>

namespace poolguard {

// How to create a pool. Pool::Create() checks every field and names the one it
// rejects in its InvalidArgument status.
struct PoolOptions {
  // Shown in error messages, statistics and debug reports.
  std::string name;
  // Usable bytes per object; must be > 0.
  size_t object_size = 0;
  // Alignment of every object; a power of two. Objects are at least
  // pointer-aligned whatever is asked, because a free object stores a link.
  size_t alignment = alignof(std::max_align_t);
  // GcAll() keeps this many free objects in the pool (when it has them).
  size_t min_free = 0;
  // 0: no limit (beyond the backend's own, see Pool::Create). Otherwise Alloc()
  // returns nullptr rather than have more than this many objects in use.
  size_t max_objects = 0;
};

// A snapshot of a pool's counters.
//
// Exact when the pool is quiescent (no call on it in flight); under
// concurrency each field may lag by the operations in flight, and
// `allocated == used + free` may not hold at that instant.
struct PoolStats {
  // Objects obtained from the system and not yet released to it: used + free.
  size_t allocated = 0;
  // Objects handed out by Alloc() and not yet given back to Free().
  size_t used = 0;
  // Objects held by the pool, ready for Alloc() without asking the system.
  size_t free = 0;
  // Alloc() calls that returned nullptr (max_objects reached, or no memory).
  size_t failed = 0;
};

}  // namespace poolguard

#endif  // POOLGUARD_POOL_POOL_TYPES_H_
