// Model files of a sweep or transform config become inline [model]
// definitions before the config is sent: the service never opens a path taken
// from a request, so the CLI reads the user's local model .toml and sends its
// content.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace qsweep {

// Replaces every model value of `toml_text` that names a model .toml file
// (contains '/' or ends in ".toml" and is not a zoo name) by the file's
// content as an inline table with its `name` (default: the file's stem):
// the top-level `model`, the values of `sweep.grid.model` and those of
// `sweep.random.model.values`. A relative path is looked up from the current
// folder, then from the folder of `config_path`. Returns `toml_text`
// unchanged when no value names a file (or the text is not TOML: the server
// reports that); otherwise the config re-written
// (same keys and order, comments dropped). NOT_FOUND naming a file that
// cannot be opened; INVALID_ARGUMENT naming the file for a bad model.
absl::StatusOr<std::string> InlineModelFiles(const std::string& toml_text,
                                             const std::string& config_path);

}  // namespace qsweep
