// Debug mode (pool/debug.h): the checks around the backend's Alloc() and
// Free(), compiled only with POOLGUARD_DEBUG; the handler API always.

#include "pool/debug.h"

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

[[maybe_unused]] void Report(Misuse misuse, const std::string& pool, const void* object,
                             std::string message) {
  MisuseReport report{misuse, pool, object, absl::StrCat("poolguard: ", message)};
  MisuseHandler handler = g_handler.load(std::memory_order_acquire);
  if (handler != nullptr) {
    handler(report);
    return;
  }
  std::fprintf(stderr, "%s\n", report.message.c_str());
  std::fflush(stderr);
  std::abort();
}

[[maybe_unused]] std::string Site(const char* file, int line) {
  if (file == nullptr) return "(none recorded)";
  return absl::StrCat(file, ":", line);
}

[[maybe_unused]] std::string Address(const void* object) {
  return absl::StrCat("0x", absl::Hex(reinterpret_cast<uintptr_t>(object)));
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

void* Pool::DebugAlloc(const char* file, int line) {
  auto* slot = static_cast<unsigned char*>(backend_.Alloc());
  if (slot == nullptr) return nullptr;
  auto* header = reinterpret_cast<internal::DebugHeader*>(slot);
  unsigned char* object = slot + internal::DebugHeaderSize(layout_.alignment);
  // The slot is ours alone now (the backend handed it out). relaxed: the
  // backend's hand-off orders the previous owner's writes before this.
  if (header->state.load(std::memory_order_relaxed) == internal::kDebugFree) {
    // A freed object coming back: its user bytes must still be the fill.
    for (size_t i = 0; i < layout_.object_size; ++i) {
      if (object[i] != kFreeFill) {
        Report(Misuse::kWriteAfterFree, layout_.name, object,
               absl::StrCat("write to freed object ", Address(object), " in pool '", layout_.name,
                            "': byte ", i, " is 0x", absl::Hex(object[i]), ", not the free fill 0x",
                            absl::Hex(kFreeFill), " (last alloc at ",
                            Site(header->alloc_file, header->alloc_line), ", last free at ",
                            Site(header->free_file, header->free_line), "; found by the alloc at ",
                            Site(file, line), ")"));
        break;
      }
    }
  } else {
    // New memory from the system.
    header->free_file = nullptr;
    header->free_line = 0;
  }
  header->pool = this;
  header->alloc_file = file;
  header->alloc_line = line;
  header->state.store(internal::kDebugLive, std::memory_order_relaxed);
  return object;
}

void Pool::DebugFree(void* object, const char* file, int line) {
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
  internal::WithLiveSystemBlock(slot, [&] {
    // A free object sits poisoned in its free list (ASan): the header is
    // live memory, so reading it is safe; make ASan agree.
    internal::UnpoisonObject(header, sizeof(internal::DebugHeader));
    uint64_t state = header->state.load(std::memory_order_acquire);
    if (state != internal::kDebugLive && state != internal::kDebugFree) return;
    owner = header->pool;
    alloc_file = header->alloc_file;
    alloc_line = header->alloc_line;
    free_file = header->free_file;
    free_line = header->free_line;
    if (state == internal::kDebugFree) {
      verdict = Verdict::kDouble;
    } else if (owner != this) {
      verdict = Verdict::kWrongPool;
    } else if (header->state.compare_exchange_strong(state, internal::kDebugFree,
                                                     std::memory_order_acq_rel)) {
      verdict = Verdict::kOk;
    } else {
      verdict = Verdict::kDouble;  // Another thread freed it just now.
    }
  });
  const std::string here = Site(file, line);
  switch (verdict) {
    case Verdict::kOk:
      break;
    case Verdict::kForeign:
      Report(Misuse::kForeignPointer, layout_.name, object,
             absl::StrCat("free of ", Address(object), " in pool '", layout_.name,
                          "': a pointer no pool handed out (or one already released to "
                          "the system) (this free at ",
                          here, ")"));
      return;
    case Verdict::kDouble:
      Report(Misuse::kDoubleFree, layout_.name, object,
             absl::StrCat("double free of ", Address(object), " in pool '", layout_.name, "'",
                          owner != this && owner != nullptr
                              ? absl::StrCat(" (an object of pool '", owner->name(), "')")
                              : "",
                          " (last alloc at ", Site(alloc_file, alloc_line), ", last free at ",
                          Site(free_file, free_line), "; this free at ", here, ")"));
      return;
    case Verdict::kWrongPool:
      Report(Misuse::kWrongPool, layout_.name, object,
             absl::StrCat("free into the wrong pool: ", Address(object), " belongs to pool '",
                          owner->name(), "', freed into pool '", layout_.name, "' (last alloc at ",
                          Site(alloc_file, alloc_line), "; this free at ", here, ")"));
      return;
  }
  header->free_file = file;
  header->free_line = line;
  std::memset(object, kFreeFill, layout_.object_size);
  backend_.Free(slot);
#if defined(POOLGUARD_UAF)
  // No caching: the object's pages go back to the system now, so any later
  // access faults.
  backend_.Flush();
#endif
}

#endif  // POOLGUARD_DEBUG

}  // namespace poolguard
