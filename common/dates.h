// Today's date as project folders are named, in UTC so that every machine of
// a sweep (and the local CLI) names the same day the same way.
#pragma once

#include <ctime>
#include <string>

namespace qsweep {

// "YYYY-MM-DD" of now, in UTC.
inline std::string TodayUtc() {
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &utc);
  return buf;
}

}  // namespace qsweep
