// Exported as "poolguard/backend.h" when --//pool:backend=lockless.
#ifndef POOLGUARD_BACKENDS_LOCKLESS_BACKEND_H_
#define POOLGUARD_BACKENDS_LOCKLESS_BACKEND_H_

#include "backends/lockless/lockless_backend.h"

namespace poolguard::internal {
using Backend = LocklessBackend;
}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_LOCKLESS_BACKEND_H_
