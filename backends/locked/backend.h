// Exported as "poolguard/backend.h" when --//pool:backend=locked.
#ifndef POOLGUARD_BACKENDS_LOCKED_BACKEND_H_
#define POOLGUARD_BACKENDS_LOCKED_BACKEND_H_

#include "backends/locked/locked_backend.h"

namespace poolguard::internal {
using Backend = LockedBackend;
}  // namespace poolguard::internal

#endif  // POOLGUARD_BACKENDS_LOCKED_BACKEND_H_
