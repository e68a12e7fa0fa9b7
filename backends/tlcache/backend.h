// Exported as "poolguard/backend.h" when --//pool:backend=tlcache (the default).
#ifndef POOLGUARD_BACKENDS_TLCACHE_BACKEND_H_
#define POOLGUARD_BACKENDS_TLCACHE_BACKEND_H_

#include "backends/tlcache/tlcache_backend.h"

namespace poolguard::internal {
using Backend = TlcacheBackend;
}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_TLCACHE_BACKEND_H_
