// Debug mode (pool/debug.h): the checks around the backend's Alloc() and
// Free(), compiled only with POOLGUARD_DEBUG; the handler API always.

#include "pool/debug.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "pool/debug_internal.h"
#include "pool/pool.h"
#include "pool/system_memory.h"

namespace poolguard {
namespace {

// nullptr: the default handler. acquire/release: a handler set before the
// pools are used is seen complete by every reporting thread.
ABSL_CONST_INIT std::atomic<MisuseHandler> g_handler{nullptr};

// The pool call in progress on this thread (debug builds), for the
// re-entrancy check. Plain thread-local data: reading and writing it is
// async-signal-safe, which is the point (a signal handler's call reads it).
struct CallInProgress {
  const Pool* pool;
  const char* what;
  const char* file;
  int line;
};
ABSL_CONST_INIT thread_local CallInProgress t_call = {nullptr, nullptr, nullptr, 0};

// `message` is the whole report, "poolguard: ..." without a newline.
[[maybe_unused]] void Report(Misuse misuse, std::string_view pool, const void* object,
                             std::string_view message) {
  const MisuseReport report{misuse, pool, object, message};
  MisuseHandler handler = g_handler.load(std::memory_order_acquire);
  if (handler != nullptr) {
    // The handler runs outside the call that reports: it may use the pools.
    const CallInProgress call = t_call;
    t_call = CallInProgress{nullptr, nullptr, nullptr, 0};
    handler(report);
    t_call = call;
    return;
  }
  // write(2), not stdio: a re-entrant call's report may be made inside a
  // signal handler.
  for (std::string_view text : {message, std::string_view("\n")}) {
    while (!text.empty()) {
      const ssize_t n = write(STDERR_FILENO, text.data(), text.size());
      if (n <= 0) break;
      text.remove_prefix(static_cast<size_t>(n));
    }
  }
  std::abort();
}

[[maybe_unused]] std::string Site(const char* file, int line) {
  if (file == nullptr) return "(none recorded)";
  return absl::StrCat(file, ":", line);
}

[[maybe_unused]] std::string Address(const void* object) {
  return absl::StrCat("0x", absl::Hex(reinterpret_cast<uintptr_t>(object)));
}

// DebugHeader's fields, read and written atomically (debug_internal.h), and
// without ASan's checks: DebugFree() reads the header of an object another
// thread may be poisoning (see there).
template <typename T>
ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS ABSL_ATTRIBUTE_ALWAYS_INLINE inline T Load(
    const T& field, int order = __ATOMIC_RELAXED) {
  return __atomic_load_n(&field, order);
}
template <typename T>
ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Store(
    T& field, T value, int order = __ATOMIC_RELAXED) {
  __atomic_store_n(&field, value, order);
}

}  // namespace

std::string_view MisuseName(Misuse misuse) {
  switch (misuse) {
    case Misuse::kDoubleFree:
      return "double_free";
    case Misuse::kForeignPointer:
      return "foreign_pointer";
    case Misuse::kWrongPool:
      return "wrong_pool";
    case Misuse::kWriteAfterFree:
      return "write_after_free";
    case Misuse::kReentrantCall:
      return "reentrant_call";
  }
  return "unknown";
}

MisuseHandler SetMisuseHandler(MisuseHandler handler) {
  return g_handler.exchange(handler, std::memory_order_acq_rel);
}

bool DebugModeEnabled() {
#if defined(POOLGUARD_DEBUG)
  return true;
#else
  return false;
#endif
}

bool UafModeEnabled() {
#if defined(POOLGUARD_UAF)
  return true;
#else
  return false;
#endif
}

#if defined(POOLGUARD_DEBUG)

namespace {

// Marks a pool call in progress on this thread for its duration; a call
// that finds one already in progress is re-entrant (entered() is false).
class CallScope {
 public:
  CallScope(const Pool* pool, const char* what, const char* file, int line) {
    if (t_call.pool != nullptr) {
      outer_ = t_call;
      return;
    }
    // A signal handler's call on this thread reads t_call between any two
    // of these stores: `pool` marks the call in progress, so it is set after
    // the rest and cleared first (signal fences: the compiler keeps that
    // order; no other thread reads t_call).
    t_call.what = what;
    t_call.file = file;
    t_call.line = line;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_call.pool = pool;
    entered_ = true;
  }
  ~CallScope() {
    if (!entered_) return;
    t_call.pool = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

  bool entered() const { return entered_; }
  const CallInProgress& outer() const { return outer_; }

 private:
  bool entered_ = false;
  CallInProgress outer_ = {nullptr, nullptr, nullptr, 0};
};

void ReportReentrant(const Pool& pool, const char* what, const char* file, int line,
                     const CallInProgress& outer) {
  // Most likely inside a signal handler, which may have interrupted malloc():
  // the report allocates nothing (a stack buffer; Report() writes with
  // write(2) or hands the handler views).
  char message[1024];
  const int n = std::snprintf(
      message, sizeof(message),
      "poolguard: re-entrant call: %s() of pool '%s' at %s:%d while %s() of pool '%s' at "
      "%s:%d is in progress on the same thread (a signal handler? pool calls are not "
      "async-signal-safe)",
      what, pool.name().c_str(), file != nullptr ? file : "?", line, outer.what,
      outer.pool->name().c_str(), outer.file != nullptr ? outer.file : "?", outer.line);
  Report(Misuse::kReentrantCall, pool.name(), nullptr,
         std::string_view(message, n < 0 ? 0 : std::min<size_t>(n, sizeof(message) - 1)));
}

}  // namespace

void* Pool::DebugAlloc(const char* file, int line) {
  CallScope scope(this, "Alloc", file, line);
  if (!scope.entered()) {
    ReportReentrant(*this, "Alloc", file, line, scope.outer());
    return nullptr;
  }
  auto* slot = static_cast<unsigned char*>(backend_.Alloc());
  if (slot == nullptr) return nullptr;
  auto* header = reinterpret_cast<internal::DebugHeader*>(slot);
  unsigned char* object = slot + internal::DebugHeaderSize(layout_.alignment);
  // The slot is ours alone now (the backend handed it out); a stale pointer's
  // Free() elsewhere may read the header meanwhile, hence the atomics.
  // acquire: pairs with the CAS of the Free() that put the object back (the
  // backend's hand-off orders that free before this alloc anyway).
  if (Load(header->state, __ATOMIC_ACQUIRE) == internal::kDebugFree) {
    // A freed object coming back: its user bytes must still be the fill.
    for (size_t i = 0; i < layout_.object_size; ++i) {
      if (object[i] != kFreeFill) {
        Report(
            Misuse::kWriteAfterFree, layout_.name, object,
            absl::StrCat("poolguard: write to freed object ", Address(object), " in pool '",
                         layout_.name, "': byte ", i, " is 0x", absl::Hex(object[i]),
                         ", not the free fill 0x", absl::Hex(kFreeFill), " (last alloc at ",
                         Site(Load(header->alloc_file), Load(header->alloc_line)),
                         ", last free at ", Site(Load(header->free_file), Load(header->free_line)),
                         "; found by the alloc at ", Site(file, line), ")"));
        break;
      }
    }
  } else {
    // New memory from the system.
    Store<const char*>(header->free_file, nullptr);
    Store(header->free_line, 0);
  }
  Store<const Pool*>(header->pool, this);
  Store(header->alloc_file, file);
  Store(header->alloc_line, line);
  // release: a later Free() that reads kDebugLive sees this call's fields.
  Store(header->state, internal::kDebugLive, __ATOMIC_RELEASE);
  return object;
}

void Pool::DebugFree(void* object, const char* file, int line) {
  CallScope scope(this, "Free", file, line);
  if (!scope.entered()) {
    ReportReentrant(*this, "Free", file, line, scope.outer());
    return;
  }
  // Integer arithmetic: `object` may point anywhere.
  void* slot = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(object) -
                                       internal::DebugHeaderSize(layout_.alignment));
  auto* header = static_cast<internal::DebugHeader*>(slot);
  enum class Verdict { kOk, kForeign, kDouble, kWrongPool };
  Verdict verdict = Verdict::kForeign;
  const Pool* owner = nullptr;
  const char* alloc_file = nullptr;
  const char* free_file = nullptr;
  int alloc_line = 0;
  int free_line = 0;
  // Read the header only if the slot is a block held from the system, and
  // under that set's lock, so no Flush() or Gc() can release it meanwhile.
  // The free that wins records its site under the same lock, so a double
  // free racing with it reports the site it raced with.
  internal::WithLiveSystemBlock(slot, [&]() ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS {
    // The header is live memory (the block is held, and cannot be released
    // while we hold the set's lock), but ASan may call it poisoned: a free
    // object is poisoned whole by its backend, and a concurrent Free() of the
    // same object may be poisoning it right now. So this function reads and
    // updates it without ASan's checks, with builtins compiled into it.
    // acquire: pairs with the release store of the Alloc() that handed it
    // out, and with the winning CAS of a concurrent Free().
    uint64_t state = Load(header->state, __ATOMIC_ACQUIRE);
    if (state != internal::kDebugLive && state != internal::kDebugFree) return;
    owner = Load(header->pool);
    alloc_file = Load(header->alloc_file);
    alloc_line = Load(header->alloc_line);
    free_file = Load(header->free_file);
    free_line = Load(header->free_line);
    if (state == internal::kDebugFree) {
      verdict = Verdict::kDouble;
    } else if (owner != this) {
      verdict = Verdict::kWrongPool;
    } else if (__atomic_compare_exchange_n(&header->state, &state, internal::kDebugFree,
                                           /*weak=*/false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      verdict = Verdict::kOk;
      Store(header->free_file, file);
      Store(header->free_line, line);
    } else {
      verdict = Verdict::kDouble;  // Another thread freed it just now.
    }
  });
  // (The site is formatted only for a report: nothing on the path of a
  // correct Free() allocates, so a signal handler's re-entrant call can be
  // reported without deadlocking in malloc.)
  switch (verdict) {
    case Verdict::kOk:
      break;
    case Verdict::kForeign:
      Report(Misuse::kForeignPointer, layout_.name, object,
             absl::StrCat("poolguard: free of ", Address(object), " in pool '", layout_.name,
                          "': a pointer no pool handed out (or one already released to "
                          "the system) (this free at ",
                          Site(file, line), ")"));
      return;
    case Verdict::kDouble:
      Report(Misuse::kDoubleFree, layout_.name, object,
             absl::StrCat("poolguard: double free of ", Address(object), " in pool '", layout_.name,
                          "'",
                          owner != this && owner != nullptr
                              ? absl::StrCat(" (an object of pool '", owner->name(), "')")
                              : "",
                          " (last alloc at ", Site(alloc_file, alloc_line), ", last free at ",
                          Site(free_file, free_line), "; this free at ", Site(file, line), ")"));
      return;
    case Verdict::kWrongPool:
      Report(Misuse::kWrongPool, layout_.name, object,
             absl::StrCat("poolguard: free into the wrong pool: ", Address(object),
                          " belongs to pool '", owner->name(), "', freed into pool '", layout_.name,
                          "' (last alloc at ", Site(alloc_file, alloc_line), "; this free at ",
                          Site(file, line), ")"));
      return;
  }
  std::memset(object, kFreeFill, layout_.object_size);
  backend_.Free(slot);
#if defined(POOLGUARD_UAF)
  // No caching: the object's pages go back to the system now, so any later
  // access faults.
  backend_.Flush();
#endif
}

void Pool::DebugFlush(const char* file, int line) {
  CallScope scope(this, "Flush", file, line);
  if (!scope.entered()) {
    ReportReentrant(*this, "Flush", file, line, scope.outer());
    return;
  }
  backend_.Flush();
}

#endif  // POOLGUARD_DEBUG

}  // namespace poolguard
