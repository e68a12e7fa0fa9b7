// The server serves every request, and its pools end with nothing in use.
#include "server/session_server.h"

#include "gtest/gtest.h"

namespace server {
namespace {

TEST(SessionServerTest, ServesEveryRequestAndLeavesNothingInUse) {
  RunOptions options;
  options.workers = 4;
  options.requests = 20000;
  const RunResult result = server::Run(options);
  EXPECT_GT(result.bytes_sent, 20000u * 30);
  EXPECT_EQ(result.sessions.used, 0u);
  EXPECT_EQ(result.buffers.used, 0u);
  EXPECT_EQ(result.sessions.allocated, result.sessions.free);
  EXPECT_EQ(result.buffers.allocated, result.buffers.free);
  EXPECT_NE(result.dump.find("reply buffers"), std::string::npos) << result.dump;
}

}  // namespace
}  // namespace server
