// Exported as "poolguard/backend.h" to the pool API built on this backend
// (poolguard_backend() in BUILD does that).
#ifndef POOLGUARD_EXAMPLES_TOY_BACKEND_H_
#define POOLGUARD_EXAMPLES_TOY_BACKEND_H_

#include "toy/toy_backend.h"

namespace poolguard::internal {
using Backend = toy::ToyBackend;
}  // namespace poolguard::internal

#endif  // POOLGUARD_EXAMPLES_TOY_BACKEND_H_
