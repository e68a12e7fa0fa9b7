// Process-wide memory limit of the pools (HAProxy's global.maxmem for pools).
//
// Every byte a pool obtains from the system (its objects, and the Pool object
// itself) goes through the system memory layer, which counts the bytes held
// right now. With a limit set, a request that would go beyond it is refused:
// the layer first runs GcAll() once (as HAProxy calls pool_gc() when malloc
// fails) and retries; if there is still no room, Alloc() returns nullptr and
// counts it in PoolStats::failed, and Create() returns ResourceExhausted.
// A per-pool limit is PoolOptions::max_objects.

#ifndef POOLGUARD_POOL_LIMITS_H_
#define POOLGUARD_POOL_LIMITS_H_

#include <cstddef>

namespace poolguard {

// Sets the most bytes all pools together may hold from the system; 0 (the
// default) means no limit. Lowering it below SystemBytesInUse() releases
// nothing by itself: requests fail until enough is released (GcAll() runs on
// the next refused request). Safe from any thread.
void SetProcessByteLimit(size_t bytes);
size_t ProcessByteLimit();

// Bytes all pools hold from the system right now (exact once quiet).
size_t SystemBytesInUse();

namespace internal {
// What the system memory layer runs to make room before refusing a request:
// GcAll(), installed by Pool::Create(). Not run while it is already running
// on the same thread.
void SetSystemReclaimHook(void (*reclaim)());

// The way for a backend to ask for a registry-wide gc (pool/backend_contract.h):
// runs GcAll() once and returns true, or returns false without running it
// when no pool exists yet or this thread is already inside a GcAll(). Call
// it with no lock held that your Gc() or Flush() takes.
bool GcAllPools();

// The byte count behind SystemBytesInUse(): the system memory layer reserves
// a request's bytes before it asks the system (false: over the limit), and
// unreserves them when the request fails or the block goes back.
bool ReserveSystemBytes(size_t size);
void UnreserveSystemBytes(size_t size);
}  // namespace internal

}  // namespace poolguard

#endif  // POOLGUARD_POOL_LIMITS_H_
