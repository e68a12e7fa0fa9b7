// A tiny server, as a user of poolguard writes one: worker threads take
// requests from a queue, each request gets a Session from one pool and a
// reply Buffer from another, and the reply goes to a writer thread that sends
// it and frees the buffer there (an object freed on another thread than the
// one that allocated it, as real servers do). A janitor calls GcAll() now and
// then. Run() returns what it served and the pools' stats at the end.

#ifndef POOLGUARD_EXAMPLES_SERVER_SESSION_SERVER_H_
#define POOLGUARD_EXAMPLES_SERVER_SESSION_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "pool/pool.h"

namespace server {

struct RunResult {
  uint64_t requests = 0;
  uint64_t bytes_sent = 0;
  poolguard::PoolStats sessions;
  poolguard::PoolStats buffers;
  std::string dump;  // DumpPools() while the pools were still alive.
};

struct RunOptions {
  int workers = 4;
  uint64_t requests = 20000;
};

RunResult Run(const RunOptions& options);

}  // namespace server

#endif  // POOLGUARD_EXAMPLES_SERVER_SESSION_SERVER_H_
