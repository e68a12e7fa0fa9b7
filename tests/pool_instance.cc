// Pool::Alloc() and Pool::Free() as out-of-line functions, for codegen_test.
// Compiled against pool/pool.h, against a copy with every POOLGUARD_DEBUG
// block removed (strip_debug.awk), and in the _debug variant.

#if defined(POOLGUARD_CODEGEN_STRIPPED)
#include "tests/pool_stripped.h"
#else
#include "pool/pool.h"
#endif

void* CodegenAlloc(poolguard::Pool& pool) { return pool.Alloc(); }
void CodegenFree(poolguard::Pool& pool, void* object) { pool.Free(object); }
