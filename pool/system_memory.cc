#include "pool/system_memory.h"

#include <cstdlib>

#include "pool/sched_point.h"

namespace poolguard::internal {

void* AllocateFromSystem(size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kAllocateSystem);
  // malloc already aligns to alignof(max_align_t); only larger alignments need
  // aligned_alloc, which requires size to be a multiple of the alignment
  // (PoolLayout::slot_size is).
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(alignment, size);
}

void ReleaseToSystem(void* block, size_t size, size_t alignment) {
  POOLGUARD_SCHED_POINT(kReleaseSystem);
  // The block may still be poisoned as a free-list object; free() accepts
  // that and ASan marks the whole block as freed.
  std::free(block);
}

}  // namespace poolguard::internal
