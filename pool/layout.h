// The validated shape of a pool, as Pool::Create() hands it to a backend.

#ifndef POOLGUARD_POOL_LAYOUT_H_
#define POOLGUARD_POOL_LAYOUT_H_

#include <cstddef>
#include <string>

namespace poolguard::internal {

struct PoolLayout {
  // The pool's name, for messages.
  std::string name;
  // Usable bytes per object, as the user asked.
  size_t object_size = 0;
  // Bytes per object as allocated: object_size rounded up to a multiple of
  // `alignment`, and to at least one pointer (a free object holds its link in
  // its first word).
  size_t slot_size = 0;
  // Alignment of each slot: a power of two, at least alignof(void*).
  size_t alignment = 0;
  // GcAll() leaves this many free objects in the pool.
  size_t min_free = 0;
  // Most objects this pool may have obtained from the system at once; never 0
  // (an unlimited pool gets the backend's own ceiling).
  size_t max_objects = 0;
};

}  // namespace poolguard::internal

#endif  // POOLGUARD_POOL_LAYOUT_H_
