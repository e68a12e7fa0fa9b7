// Out-of-line copies of the tlcache backend's inline fast paths, so that
// tests/codegen_test compares their object code too (the header's Alloc() and
// Free() are what Pool::Alloc()/Free() inline).
#include "backends/tlcache/tlcache_backend.h"

namespace poolguard::internal {

void* TlcacheAllocForCodegen(TlcacheBackend& backend) { return backend.Alloc(); }
void TlcacheFreeForCodegen(TlcacheBackend& backend, void* object) { backend.Free(object); }

}  // namespace poolguard::internal
