// common/log.h: levels, the line format, and the filter.
#include "common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

namespace qsweep::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(LogTest, ParseLevelTakesTheFlagValuesAndNamesThemOnError) {
  EXPECT_EQ(*ParseLevel("trace"), Level::kTrace);
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("info"), Level::kInfo);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  EXPECT_EQ(*ParseLevel("off"), Level::kOff);
  auto bad = ParseLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("log level 'loud' is not valid (allowed: trace, debug, info, warn, "
                        "error or off)"));
}

TEST(LogTest, LinesBelowTheLevelAreDroppedOthersCarryTimeLevelAndProgram) {
  std::ostringstream out;
  Init("qsweep-test", Level::kWarn, &out);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
  Info("not shown");
  Debug("not shown either");
  Warn("lease renewal is late");
  Error("store is read-only");
  EXPECT_THAT(
      out.str(),
      MatchesRegex("\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]{12}\\] \\[warning\\] qsweep-test: "
                   "lease renewal is late\n"
                   "\\[[^]]*\\] \\[error\\] qsweep-test: store is read-only\n"));

  std::ostringstream quiet;
  Init("qsweep-test", Level::kOff, &quiet);
  Error("never written");
  EXPECT_EQ(quiet.str(), "");
  Init("qsweep", Level::kInfo);  // back to stderr for the other tests
}

}  // namespace
}  // namespace qsweep::log
