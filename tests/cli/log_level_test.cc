// qsweep-server and qsweep-worker write their log lines through common/log.h
// at the level given with --log-level (default info); a bad value is refused
// naming the allowed ones. The programs are run with arguments that make them
// stop at once (a start-up error), so no server is needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/common/subprocess.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kServer = std::string(QSWEEP_BINARY_DIR) + "/qsweep-server";
const std::string kWorker = std::string(QSWEEP_BINARY_DIR) + "/qsweep-worker";

testing::ProcessResult RunProgram(std::vector<std::string> argv) {
  testing::ProcessOptions o;
  o.timeout = std::chrono::seconds(60);
  return testing::RunProcess(argv, o);
}

TEST(LogLevelTest, WorkerLinesFollowTheLevel) {
  auto r = RunProgram({kWorker, "--grace", "soon"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("] [error] qsweep-worker: --grace is 'soon'; allowed: a positive "
                               "duration such as 30s, 2m\n"));
  r = RunProgram({kWorker, "--log-level", "off", "--grace", "soon"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "");
  r = RunProgram({kWorker, "--log-level", "loud"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--log-level"), HasSubstr("loud"), HasSubstr("warn")));
}

TEST(LogLevelTest, ServerLinesFollowTheLevel) {
  auto r = RunProgram({kServer, "--db", ":memory:", "--local-workers", "1"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("] [error] qsweep-server: --local-workers with an in-memory --db "
                               "needs --state-dir"));
  r = RunProgram({kServer, "--log-level", "off", "--db", ":memory:", "--local-workers", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "");
  r = RunProgram({kServer, "--log-level", "loud"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--log-level"), HasSubstr("loud"), HasSubstr("warn")));
}

}  // namespace
}  // namespace qsweep
