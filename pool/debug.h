// Debug mode: misuse detection in the Pool layer (HAProxy's
// DEBUG_POOL_INTEGRITY and DEBUG_UAF, checked at every call).
//
// Built with --//pool:debug=on (the _debug variant, POOLGUARD_DEBUG), every
// object carries a small header before it: a state word, its pool, and the
// call sites of its last Alloc() and Free(). Free() then detects
//   - a double free (the object is already free in its pool),
//   - a pointer no pool handed out (checked against the set of blocks held
//     from the system before any memory near it is read),
//   - a free into the wrong pool (the object belongs to another pool),
//   - a pool call re-entered on the same thread (a signal handler calling
//     Alloc(), Free() or Flush() while the thread it interrupted was inside
//     one: pool calls are not async-signal-safe),
// and every freed object is filled with kFreeFill, checked by the Alloc()
// that hands it out again: a write to a freed object is reported there.
// --//pool:debug=uaf (the _uaf variant) adds POOLGUARD_UAF: each object has
// pages of its own, unmapped when it is freed, so a later access faults
// where it happens (slow, memory-hungry: for hunting a bug in the field).
//
// A report names the pool, the object and the recorded call sites, then goes
// to the misuse handler: by default it prints to stderr and aborts.
// Production builds (--//pool:debug=off, the default) contain none of this:
// tests/codegen_test checks that Alloc()/Free() compile to the same code as
// without it.

#ifndef POOLGUARD_POOL_DEBUG_H_
#define POOLGUARD_POOL_DEBUG_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace poolguard {

enum class Misuse {
  kDoubleFree,
  kForeignPointer,
  kWrongPool,
  kWriteAfterFree,
  // A pool call (Alloc, Free, Flush) made while another is in progress on
  // the same thread: from a signal handler, since pool calls are not
  // async-signal-safe. The default report allocates nothing (it may be made
  // inside a signal handler that interrupted malloc). The re-entered call
  // does nothing (Alloc() returns nullptr) if the handler returns.
  kReentrantCall,
};

std::string_view MisuseName(Misuse misuse);

// One report. The views are valid only during the handler's call (copy what
// you keep): a report of a re-entrant call may be made inside a signal
// handler, so making one allocates nothing.
struct MisuseReport {
  Misuse misuse;
  // The name of the pool the call was made on.
  std::string_view pool;
  const void* object;
  // The full message, as printed by the default handler (without newline).
  std::string_view message;
};

// Called with each report. If it returns, the offending Free() does nothing
// (the object stays as it was), and an Alloc() that found a damaged freed
// object hands it out anyway.
using MisuseHandler = void (*)(const MisuseReport& report);

// Replaces the handler (nullptr: the default, print and abort); returns the
// previous one. Process-wide; set it before the pools are used.
MisuseHandler SetMisuseHandler(MisuseHandler handler);

// The byte a freed object's user bytes are filled with in debug mode.
inline constexpr unsigned char kFreeFill = 0xdb;

// Whether this binary was built in debug mode, and with UAF mode.
bool DebugModeEnabled();
bool UafModeEnabled();

}  // namespace poolguard

#endif  // POOLGUARD_POOL_DEBUG_H_
