// The executors' own synchronization, hidden from ThreadSanitizer: between
// the constructor and the destructor of a HiddenFromTsan, TSan records no
// happens-before edge for the calling thread's synchronization. The
// executors use it for what orders threads without being part of the
// program under test (the scheduled executor's hand-offs, the free-running
// executor's fork gate), so that TSan sees only the program's own edges and
// still reports the races between its threads. No-op outside TSan builds.
//
// POOLGUARD_TSAN_SEE_HANDOFFS=1 in the environment turns the hiding off: the
// control experiment of tools/check_tsan_handoffs.sh, which shows that TSan
// then misses the races between serialized threads.

#ifndef POOLGUARD_FUZZ_HIDDEN_FROM_TSAN_H_
#define POOLGUARD_FUZZ_HIDDEN_FROM_TSAN_H_

#include <cstdlib>
#include <string_view>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POOLGUARD_TSAN 1
#endif
#endif

#if defined(POOLGUARD_TSAN)
// From the TSan runtime.
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
#endif

namespace poolguard::fuzz {

class HiddenFromTsan {
 public:
  HiddenFromTsan() {
#if defined(POOLGUARD_TSAN)
    if (Enabled()) AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
#endif
  }
  ~HiddenFromTsan() {
#if defined(POOLGUARD_TSAN)
    if (Enabled()) AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
#endif
  }
  HiddenFromTsan(const HiddenFromTsan&) = delete;
  HiddenFromTsan& operator=(const HiddenFromTsan&) = delete;

 private:
  [[maybe_unused]] static bool Enabled() {
    static const bool enabled = [] {
      const char* see = std::getenv("POOLGUARD_TSAN_SEE_HANDOFFS");
      return see == nullptr || std::string_view(see) != "1";
    }();
    return enabled;
  }
};

}  // namespace poolguard::fuzz

#endif  // POOLGUARD_FUZZ_HIDDEN_FROM_TSAN_H_
