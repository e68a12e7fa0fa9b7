// poolguard: fixed-size object pools whose concurrency strategy is chosen at
// build time.
//
// A Pool hands out objects of one size and alignment. Freed objects stay in
// the pool for the next Alloc(); Flush() gives a pool's free objects back to
// the system, and GcAll() trims every live pool down to its `min_free`.
//
//   absl::StatusOr<std::unique_ptr<poolguard::Pool>> pool =
//       poolguard::Pool::Create({.name = "session", .object_size = 96});
//   if (!pool.ok()) return pool.status();
//   void* session = (*pool)->Alloc();   // nullptr: limit reached or no memory
//   ...
//   (*pool)->Free(session);
//
// The backend (--//pool:backend=locked|lockless|tlcache, or one of your own
// built with poolguard_backend() in defs.bzl) is compiled in: no virtual call
// stands between Alloc()/Free() and it. BackendName() says which. The seam is
// "poolguard/backend.h", which names the class `internal::Backend`;
// pool/backend_contract.h checks what it must provide.
//
// Thread safety: every function here may be called from any thread at the
// same time as any other, including Create() and GcAll(). Only the
// destruction of a pool must not race with calls on that same pool.
//
// Not async-signal-safe, as malloc() is not: do not call a pool from a
// signal handler that may interrupt a pool call on the same thread (the
// interrupted call may hold a lock, a claim or its thread cache's window).
// Debug mode reports such a re-entered call, naming the pool and both call
// sites.
//
// Real processes: a thread's cached objects go back to their pools when it
// exits, whatever phase of its exit its last pool call runs in (also a
// thread_local or pthread key destructor), with one exception glibc makes:
// no exit hook can run after its last round of key destructors
// (PTHREAD_DESTRUCTOR_ITERATIONS), so a thread whose first Alloc() or Free()
// comes in that round must call ReleaseThreadCaches() when done, or its
// cache stays until Flush()/GcAll() take its objects. fork() is safe while other
// threads are inside pool calls: the child can use, flush and destroy every
// pool it inherited, with exact stats (pool/registry.cc says how).
//
// An object's life, and what is invalid:
//
//   state             | Alloc() returns it | Free(it)       | access to it
//   ------------------+--------------------+----------------+---------------
//   in use (yours)    | -                  | -> free        | yours
//   free (in pool)    | -> in use          | invalid        | invalid
//   released (system) | (new memory)       | invalid        | invalid
//
// Invalid means undefined behaviour. Under ASan (--config=asan) a free
// object is poisoned, so accesses to it are reported, and released memory is
// really freed. Freeing into another pool, or a pointer no pool handed out, is
// also invalid. Debug mode (--//pool:debug=on, pool/debug.h) detects each of
// these and reports it naming the pool and the call sites.

#ifndef POOLGUARD_POOL_POOL_H_
#define POOLGUARD_POOL_POOL_H_

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "absl/base/attributes.h"
#include "absl/status/statusor.h"
#include "pool/backend_contract.h"
#include "pool/debug.h"
#include "pool/layout.h"
#include "pool/limits.h"
#include "pool/pool_types.h"
#include "poolguard/backend.h"

namespace poolguard {
namespace internal {
class Registry;
}  // namespace internal

static_assert(internal::CheckBackendContract<internal::Backend>());

class Pool {
 public:
  // The largest object_size and alignment Create() accepts: larger ones no
  // allocation can satisfy (AddressSanitizer and ThreadSanitizer refuse
  // blocks over 1 TiB outright, and no machine this runs on has that much).
  static constexpr size_t kMaxObjectSize = size_t{1} << 40;
  static constexpr size_t kMaxAlignment = size_t{1} << 21;  // 2 MiB, a huge page

  // Creates a pool and registers it for GcAll(). Returns InvalidArgument,
  // naming the field (and the maximum), when: object_size is 0 or over
  // kMaxObjectSize; alignment is not a power of two or over kMaxAlignment;
  // max_objects exceeds what the backend can count (the shared free list:
  // 2^32 - 1).
  // Returns ResourceExhausted when the system has no memory for the pool.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolOptions& options);

  // Releases every free object and leaves the registry, waiting for a
  // GcAll() that is walking this pool.
  // REQUIRES: no object of this pool is in use (debug builds check and abort
  // naming the pool), and no other call on this pool is in flight.
  ~Pool();

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A pool itself lives in memory from the system memory layer, so that an
  // injected failure (pool/failure_injection.h) reaches Create() as well; only
  // Create() allocates pools (nothrow).
  static void* operator new(size_t size, const std::nothrow_t&) noexcept;
  static void operator delete(void* pool, size_t size) noexcept;
  static void operator delete(void* pool, const std::nothrow_t&) noexcept;

  // Returns an object of object_size() bytes aligned to alignment(), or
  // nullptr when max_objects objects are in use or the system has no memory,
  // even after a GcAll() (pool/limits.h); each such call counts in
  // PoolStats::failed.
  //
  // Gives an object back to the pool with Free(); nullptr is a no-op.
  // REQUIRES: object came from this pool's Alloc() and is not already free.
  //
  // In debug mode both record their caller's file and line for reports.
#if defined(POOLGUARD_DEBUG)
  void* Alloc(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return DebugAlloc(file, line);
  }
  void Free(void* object, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    if (object != nullptr) DebugFree(object, file, line);
  }
#else
  // Always inlined: the backend's hot path is small and meant to be inlined
  // into callers (each backend's header says what it costs).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Alloc() { return backend_.Alloc(); }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Free(void* object) {
    if (object != nullptr) backend_.Free(object);
  }
#endif

  // Releases every free object of this pool to the system, also those other
  // threads cache. Objects freed concurrently may stay; once other threads
  // are quiet, allocated == used.
#if defined(POOLGUARD_DEBUG)
  void Flush(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    DebugFlush(file, line);
  }
#else
  void Flush() { backend_.Flush(); }
#endif

  PoolStats Stats() const { return backend_.Stats(); }

  const std::string& name() const { return layout_.name; }
  // Usable bytes per object, as requested.
  size_t object_size() const { return layout_.object_size; }
  // Bytes each object occupies (object_size rounded up for alignment; in
  // debug mode, plus the debug header).
  size_t slot_size() const { return layout_.slot_size; }
  size_t alignment() const { return layout_.alignment; }
  size_t min_free() const { return layout_.min_free; }
  // The limit in force: PoolOptions::max_objects, or the backend's own.
  size_t max_objects() const { return layout_.max_objects; }

 private:
  friend void GcAll();
  friend class internal::Registry;

#if defined(POOLGUARD_DEBUG)
  // pool/debug.cc: the checks around backend_.Alloc(), Free() and Flush().
  void* DebugAlloc(const char* file, int line);
  void DebugFree(void* object, const char* file, int line);
  void DebugFlush(const char* file, int line);
#endif

  explicit Pool(internal::PoolLayout layout);

  // Declared before backend_, which keeps a reference to it.
  const internal::PoolLayout layout_;
  internal::Backend backend_;

  // The registry's intrusive list of live pools, guarded by its lock
  // (pool/registry.cc).
  Pool* registry_prev_ = nullptr;
  Pool* registry_next_ = nullptr;
};

// For every live pool, releases free objects beyond its min_free, as HAProxy's
// pool_gc(). Safe beside any other call; a pool being destroyed waits for it.
void GcAll();

// Gives the calling thread's cached free objects back to their pools, as the
// thread's exit would; the thread may go on using pools (a cache is bound
// again on its next call). For a thread about to sleep for long, a test
// that wants exact per-pool stats without flushing, or code in glibc's last
// round of key destructors (see "Real processes" above). A no-op for
// backends without thread caches.
void ReleaseThreadCaches();

// The backend this binary was built with: "locked", "lockless" or "tlcache".
std::string_view BackendName();

// Every live pool with its shape and stats, like HAProxy's `show pools`: a
// text table, or one JSON object. Each pool's stats are one Stats() snapshot
// (never torn; exact when that pool is quiescent). Taken under the registry's
// lock, so no pool leaves while it runs.
enum class DumpFormat { kText, kJson };
std::string DumpPools(DumpFormat format = DumpFormat::kText);

}  // namespace poolguard

#endif  // POOLGUARD_POOL_POOL_H_
