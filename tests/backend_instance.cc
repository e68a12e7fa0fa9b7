// Out-of-line copies of a backend's members, whichever backend
// "poolguard/backend.h" is, so that codegen_test_<backend> compares the
// object code of its inline paths too (Pool::Alloc()/Free() inline the
// header's Alloc() and Free(); header-only backends have nothing else).

#include <new>

#include "poolguard/backend.h"

namespace poolguard::internal {

void* AllocForCodegen(Backend& backend) { return backend.Alloc(); }
void FreeForCodegen(Backend& backend, void* object) { backend.Free(object); }
void FlushForCodegen(Backend& backend) { backend.Flush(); }
void GcForCodegen(Backend& backend) { backend.Gc(); }
PoolStats StatsForCodegen(const Backend& backend) { return backend.Stats(); }
void ConstructForCodegen(void* memory, const PoolLayout& layout) { new (memory) Backend(layout); }
void DestroyForCodegen(Backend& backend) { backend.~Backend(); }

}  // namespace poolguard::internal
