// Flags of the long-running programs that take a value: garbage is refused at
// start with exit status 2 and a message naming the flag and what it allows;
// their log lines go through common/log.h at the --log-level given (default
// info). Each run stops at a start-up error, so no server is needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/common/subprocess.h"

namespace qsweep {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kServer = std::string(QSWEEP_BINARY_DIR) + "/qsweep-server";
const std::string kWorker = std::string(QSWEEP_BINARY_DIR) + "/qsweep-worker";

testing::ProcessResult RunProgram(std::vector<std::string> argv) {
  testing::ProcessOptions o;
  o.timeout = std::chrono::seconds(60);
  return testing::RunProcess(argv, o);
}

TEST(ProgramFlagsTest, WorkerResumeEveryMustBeZeroOrADuration) {
  for (const char* bad : {"soon", "-5s", "10 parsecs", ""}) {
    auto r = RunProgram({kWorker, "--resume-every", bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_THAT(r.err, AllOf(HasSubstr("--resume-every"),
                             HasSubstr("allowed: 0 or a duration such as 10s, 1m")))
        << bad;
  }
}

TEST(ProgramFlagsTest, ServerThreadCountsAreBounded) {
  for (const char* flag : {"--work-threads", "--watch-threads"}) {
    for (const char* bad : {"0", "65", "many", "-1"}) {
      auto r = RunProgram({kServer, flag, bad, "--db", ":memory:"});
      EXPECT_NE(r.code, 0) << flag << " " << bad;
      EXPECT_THAT(r.out + r.err, HasSubstr(flag)) << flag << " " << bad << ": " << r.err;
    }
  }
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
