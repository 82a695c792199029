// Log lines of the long-running programs (qsweep-server, qsweep-worker),
// written through spdlog: one line per event on stderr,
//   [2026-12-01 21:50:01.123] [info] qsweep-server: serving on ...
// at or above the level chosen with --log-level. spdlog stays inside log.cc:
// this header is cheap to include.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace qsweep::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// The --log-level values, in order: "trace", "debug", "info", "warn", "error", "off".
const char* const* LevelNames();
inline constexpr int kLevelCount = 6;
inline constexpr char kLevelHelp[] = "trace, debug, info, warn, error or off";

// "trace" ... "off"; INVALID_ARGUMENT naming the value and the allowed ones.
absl::StatusOr<Level> ParseLevel(std::string_view name);

// Sets the program name shown in each line and the lowest level written; lines
// go to `out` (tests) or, when null, to stderr. Before Init: "qsweep", info,
// stderr. Thread-safe to log from any thread; call Init before starting any.
void Init(std::string_view program, Level level, std::ostream* out = nullptr);

bool Enabled(Level level);
void Write(Level level, std::string_view message);
inline void Debug(std::string_view message) { Write(Level::kDebug, message); }
inline void Info(std::string_view message) { Write(Level::kInfo, message); }
inline void Warn(std::string_view message) { Write(Level::kWarn, message); }
inline void Error(std::string_view message) { Write(Level::kError, message); }

}  // namespace qsweep::log
