#include "client/global_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qsweep {
namespace {

using ::testing::ElementsAre;

TEST(GlobalFlagsTest, FlagsBeforeTheCommandMoveAfterIt) {
  EXPECT_THAT(CommandFirst({"--server", "127.0.0.1:9", "submit", "s.toml"}),
              ElementsAre("submit", "--server", "127.0.0.1:9", "s.toml"));
  EXPECT_THAT(CommandFirst({"--server=h:1", "--token-file", "t", "jobs", "sw-1"}),
              ElementsAre("jobs", "--server=h:1", "--token-file", "t", "sw-1"));
}

TEST(GlobalFlagsTest, OtherArgumentsAreLeftAlone) {
  EXPECT_THAT(CommandFirst({"submit", "s.toml", "--server", "h:1"}),
              ElementsAre("submit", "s.toml", "--server", "h:1"));
  EXPECT_THAT(CommandFirst({"--bogus", "submit"}), ElementsAre("--bogus", "submit"));
  EXPECT_THAT(CommandFirst({"--server", "h:1"}), ElementsAre("--server", "h:1"));
  EXPECT_THAT(CommandFirst({}), ElementsAre());
}

}  // namespace
}  // namespace qsweep
