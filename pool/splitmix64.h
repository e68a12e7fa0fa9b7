// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", 2014): small, fast, and the same sequence for the same seed on
// every platform. The one generator of the project: failure injection's
// probabilities, and the fuzz code's random programs, random preemption and
// schedule mutations, so that each replays from its seed.

#ifndef POOLGUARD_POOL_SPLITMIX64_H_
#define POOLGUARD_POOL_SPLITMIX64_H_

#include <cstdint>

namespace poolguard::internal {

// Advances `state` and returns the next value of its sequence.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace poolguard::internal

#endif  // POOLGUARD_POOL_SPLITMIX64_H_
