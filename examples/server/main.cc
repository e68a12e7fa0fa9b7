// bazel run //server -- [requests]   (--@poolguard//pool:backend=locked|lockless|tlcache)
#include <cstdio>
#include <cstdlib>

#include "server/session_server.h"

int main(int argc, char** argv) {
  server::RunOptions options;
  if (argc > 1) options.requests = std::strtoull(argv[1], nullptr, 10);
  const server::RunResult result = server::Run(options);
  std::printf("served %llu requests, %llu bytes, on the %s backend\n%s",
              static_cast<unsigned long long>(result.requests),
              static_cast<unsigned long long>(result.bytes_sent),
              std::string(poolguard::BackendName()).c_str(), result.dump.c_str());
  return 0;
}
