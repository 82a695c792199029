// TOML -> JSON conversion shared by every config reader. The string "NA"
// anywhere becomes null (MASE's convention); key order is the file's order.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace qsweep {

// INVALID_ARGUMENT with `source`, line and column on a syntax error.
absl::StatusOr<nlohmann::ordered_json> ParseTomlToJson(const std::string& toml_text,
                                                       const std::string& source);

// Reads a file and converts it. NOT_FOUND if it cannot be opened.
absl::StatusOr<nlohmann::ordered_json> ParseTomlFileToJson(const std::string& path);

}  // namespace qsweep
