// qsweep and qsweep-server find the worker binary through the same
// environment variable (common/worker_binary.h).
#include "common/worker_binary.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "client/worker_exec.h"
#include "common/dates.h"
#include "server/local_workers.h"

namespace qsweep {
namespace {

TEST(WorkerBinaryTest, TheCliAndTheServerHonourTheSameVariable) {
  EXPECT_STREQ(kWorkerBinaryEnv, "QSWEEP_WORKER_BIN");
  setenv("QSWEEP_WORKER_BIN", "/opt/somewhere/qsweep-worker", 1);
  EXPECT_EQ(FindWorkerBinary("qsweep"), "/opt/somewhere/qsweep-worker");
  EXPECT_EQ(FindWorkerBinary(), "/opt/somewhere/qsweep-worker");
  unsetenv("QSWEEP_WORKER_BIN");
}

// Project folders are named by the UTC date everywhere, whatever the zone.
TEST(DatesTest, TodayIsTheUtcDate) {
  setenv("TZ", "<+14>-14", 1);  // 14 hours ahead of UTC, no tz database needed
  tzset();
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char expected[16];
  std::strftime(expected, sizeof expected, "%Y-%m-%d", &utc);
  const std::string today = TodayUtc();
  unsetenv("TZ");
  tzset();
  if (std::time(nullptr) / 86400 == t / 86400) EXPECT_EQ(today, expected);  // no midnight between
}

}  // namespace
}  // namespace qsweep
