// The test helper that runs child processes under a deadline.
#include "tests/common/subprocess.h"

#include <gtest/gtest.h>

#include <chrono>

namespace qsweep::testing {
namespace {

using std::chrono::milliseconds;

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = RunShell("echo out; echo err >&2; exit 3");
  EXPECT_EQ(r.code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  ProcessOptions merged;
  merged.merge_stderr = true;
  auto m = RunShell("echo a; echo b >&2", merged);
  EXPECT_EQ(m.out, "a\nb\n");
  EXPECT_EQ(m.err, "");
}

TEST(Subprocess, PassesArgumentsVerbatimAndExtraEnvironment) {
  ProcessOptions o;
  o.env = {"QSWEEP_SUBPROCESS_TEST=x y", "HOME=/nonexistent-home"};
  auto r =
      RunProcess({"/bin/sh", "-c", "printf '%s|%s|%s' \"$1\" \"$QSWEEP_SUBPROCESS_TEST\" \"$HOME\"",
                  "sh", "it's \"quoted\""},
                 o);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "it's \"quoted\"|x y|/nonexistent-home");
}

TEST(Subprocess, KillsAHangAndItsChildrenAtTheDeadline) {
  ProcessOptions o;
  o.timeout = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  // The child shell waits on a grandchild that holds the output pipe open:
  // both must be killed for the call to return.
  auto r = RunShell("echo started; sleep 600 & wait", o);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.code, -1);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_NE(r.err.find("killed after 300 ms"), std::string::npos) << r.err;
  EXPECT_LT(took, std::chrono::seconds(30));
}

TEST(Subprocess, ReportsSignalsAndMissingPrograms) {
  auto killed = RunShell("kill -9 $$");
  EXPECT_EQ(killed.code, 128 + 9);
  EXPECT_FALSE(killed.timed_out);
  auto missing = RunProcess({"/nonexistent/qsweep-no-such-program"});
  EXPECT_NE(missing.code, 0);
  EXPECT_FALSE(missing.timed_out);
}

}  // namespace
}  // namespace qsweep::testing
