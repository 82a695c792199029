// Command-line parsing for the local commands (`qsweep train`, `qsweep test`,
// `qsweep transform`): MASE's flag names, precedence default < TOML < flag
// that was explicitly given (unlike MASE, a flag equal to its default still
// overrides the file). Torch-free.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"

namespace qsweep {

struct LocalArgs {
  ConfigLayers layers;                // defaults, file (--config) and explicit flags
  std::string config_path;            // "" when no --config
  std::vector<std::string> positionals;
  std::string help;                   // non-empty when --help was asked: print it, exit 0
  // Extra options of the transform/test commands.
  std::string output;                 // -o / --output
  int64_t fine_tune_epochs = 0;       // transform: --fine-tune-epochs N
  bool no_eval = false;               // transform: --no-eval
};

// Parses `args` (the words after the command name). `positional_names` documents
// the positionals in --help, e.g. {"MODEL", "DATASET"}; positionals fill the
// keys "model" and "dataset" in that order when `positionals_are_model_dataset`.
// INVALID_ARGUMENT naming the flag on bad input.
absl::StatusOr<LocalArgs> ParseLocalArgs(const std::string& command,
                                         const std::vector<std::string>& args,
                                         bool positionals_are_model_dataset);

}  // namespace qsweep
