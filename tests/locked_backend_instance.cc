// Instantiates the header-only locked backend in a translation unit of its
// own, so that tests/codegen_test can compare its object code.
#include "backends/locked/locked_backend.h"

namespace poolguard::internal {
template class BasicLockedBackend<SpinLock>;
}  // namespace poolguard::internal
