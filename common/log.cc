#include "common/log.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace qsweep::log {
namespace {

constexpr const char* kNames[kLevelCount] = {"trace", "debug", "info", "warn", "error", "off"};

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      break;
  }
  return spdlog::level::off;
}

std::shared_ptr<spdlog::logger> MakeLogger(std::string_view program, Level level,
                                           std::ostream* out) {
  spdlog::sink_ptr sink;
  if (out != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, /*force_flush=*/true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(program), std::move(sink));
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %n: %v");
  logger->set_level(ToSpd(level));
  logger->flush_on(spdlog::level::trace);  // every line at once: logs are followed live
  return logger;
}

std::mutex mu;
std::shared_ptr<spdlog::logger>& Logger() {
  static std::shared_ptr<spdlog::logger> logger = MakeLogger("qsweep", Level::kInfo, nullptr);
  return logger;
}

std::shared_ptr<spdlog::logger> Current() {
  std::lock_guard<std::mutex> lock(mu);
  return Logger();
}

}  // namespace

const char* const* LevelNames() { return kNames; }

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  for (int i = 0; i < kLevelCount; ++i)
    if (name == kNames[i]) return static_cast<Level>(i);
  return absl::InvalidArgumentError(
      absl::StrCat("log level '", std::string(name), "' is not valid (allowed: ", kLevelHelp, ")"));
}

void Init(std::string_view program, Level level, std::ostream* out) {
  auto logger = MakeLogger(program, level, out);
  std::lock_guard<std::mutex> lock(mu);
  Logger() = std::move(logger);
}

bool Enabled(Level level) { return Current()->should_log(ToSpd(level)); }

void Write(Level level, std::string_view message) {
  if (level == Level::kOff) return;
  Current()->log(ToSpd(level), "{}", message);
}

}  // namespace qsweep::log
