// --log-level for a program's command line (qsweep-server, qsweep-worker).
// Includes CLI11: only for the programs' main.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "common/log.h"

namespace qsweep::log {

// Adds --log-level to `app`, read into `level` (default "info"); only the
// names of ParseLevel are accepted. After parsing: Init(program, *ParseLevel(level)).
inline CLI::Option* AddLevelFlag(CLI::App& app, std::string& level) {
  level = "info";
  return app
      .add_option("--log-level", level,
                  std::string("lowest level of the log lines written to stderr: ") + kLevelHelp)
      ->check(CLI::IsMember(std::vector<std::string>(LevelNames(), LevelNames() + kLevelCount)))
      ->capture_default_str();
}

}  // namespace qsweep::log
