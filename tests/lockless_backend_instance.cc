// Out-of-line copies of the lockless backend's inline fast paths, so that
// tests/codegen_test compares their object code too (the header's Alloc() and
// Free() are what Pool::Alloc()/Free() inline).
#include "backends/lockless/lockless_backend.h"

namespace poolguard::internal {

void* LocklessAllocForCodegen(LocklessBackend& backend) { return backend.Alloc(); }
void LocklessFreeForCodegen(LocklessBackend& backend, void* object) { backend.Free(object); }

}  // namespace poolguard::internal
