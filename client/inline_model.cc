#include "client/inline_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/config/toml_json.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

bool NamesFile(const std::string& value) {
  const auto zoo = ZooModelNames();
  if (std::find(zoo.begin(), zoo.end(), value) != zoo.end()) return false;
  return value.find('/') != std::string::npos || fs::path(value).extension() == ".toml";
}

// A TOML basic string (JSON's escapes are a subset of TOML's).
std::string TomlString(const std::string& s) { return ojson(s).dump(); }

absl::StatusOr<std::string> InlineValue(const ojson& v) {
  if (v.is_null()) return std::string("\"NA\"");
  if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
  if (v.is_number_integer()) return v.dump();
  if (v.is_number()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return absl::InvalidArgumentError("a number is not finite");
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", d);
    std::string text = buf;
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
  }
  if (v.is_string()) return TomlString(v.get<std::string>());
  std::string out;
  if (v.is_array()) {
    out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      QSWEEP_ASSIGN_OR_RETURN(std::string e, InlineValue(v[i]));
      absl::StrAppend(&out, i ? ", " : "", e);
    }
    return out + "]";
  }
  out = "{";
  bool first = true;
  for (const auto& [k, e] : v.items()) {
    QSWEEP_ASSIGN_OR_RETURN(std::string text, InlineValue(e));
    absl::StrAppend(&out, first ? " " : ", ", TomlString(k), " = ", text);
    first = false;
  }
  return out + (first ? "}" : " }");
}

// Writes a table: its values first, then its sub-tables as [a.b] sections,
// each group in the document's order.
absl::Status WriteTable(const ojson& table, const std::string& path, std::string& out) {
  for (const auto& [k, v] : table.items()) {
    if (v.is_object()) continue;
    QSWEEP_ASSIGN_OR_RETURN(std::string text, InlineValue(v));
    absl::StrAppend(&out, TomlString(k), " = ", text, "\n");
  }
  for (const auto& [k, v] : table.items()) {
    if (!v.is_object()) continue;
    const std::string sub = absl::StrCat(path, path.empty() ? "" : ".", TomlString(k));
    absl::StrAppend(&out, "\n[", sub, "]\n");
    QSWEEP_RETURN_IF_ERROR(WriteTable(v, sub, out));
  }
  return absl::OkStatus();
}

// The model file named by `value` as an inline definition.
absl::StatusOr<ojson> ReadModelFile(const std::string& value, const std::string& config_path) {
  fs::path path = value;
  std::error_code ec;
  if (path.is_relative() && !fs::exists(path, ec)) {
    fs::path beside = fs::path(config_path).parent_path() / path;
    if (fs::exists(beside, ec)) path = beside;
  }
  if (!fs::is_regular_file(path, ec))
    return absl::NotFoundError(
        absl::StrCat("model file '", value, "' cannot be opened (not a regular file)"));
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("model file '", value, "' cannot be opened"));
  std::stringstream text;
  text << f.rdbuf();
  const std::string stem = path.stem().string();
  // Checked here too, so that a bad model file is reported with its name.
  auto spec = ModelFromToml(text.str(), stem);
  if (!spec.ok())
    return absl::InvalidArgumentError(absl::StrCat(value, ": ", spec.status().message()));
  QSWEEP_ASSIGN_OR_RETURN(ojson def, ParseTomlToJson(text.str(), value));
  if (!def.contains("name")) {
    ojson named = ojson::object();
    named["name"] = stem;
    for (const auto& [k, v] : def.items()) named[k] = v;
    def = std::move(named);
  }
  return def;
}

// Replaces `v` by the model file's content when it names one.
absl::Status InlineOne(ojson& v, const std::string& config_path, bool& changed) {
  if (!v.is_string() || !NamesFile(v.get<std::string>())) return absl::OkStatus();
  QSWEEP_ASSIGN_OR_RETURN(v, ReadModelFile(v.get<std::string>(), config_path));
  changed = true;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> InlineModelFiles(const std::string& toml_text,
                                             const std::string& config_path) {
  auto parsed = ParseTomlToJson(toml_text, config_path);
  if (!parsed.ok()) return toml_text;  // the server reports the syntax error
  ojson doc = std::move(*parsed);
  bool changed = false;
  if (doc.contains("model")) QSWEEP_RETURN_IF_ERROR(InlineOne(doc["model"], config_path, changed));
  if (doc.contains("sweep") && doc["sweep"].is_object()) {
    ojson& sweep = doc["sweep"];
    if (sweep.contains("grid") && sweep["grid"].is_object() && sweep["grid"].contains("model") &&
        sweep["grid"]["model"].is_array())
      for (auto& v : sweep["grid"]["model"])
        QSWEEP_RETURN_IF_ERROR(InlineOne(v, config_path, changed));
    if (sweep.contains("random") && sweep["random"].is_object() &&
        sweep["random"].contains("model") && sweep["random"]["model"].is_object() &&
        sweep["random"]["model"].contains("values") &&
        sweep["random"]["model"]["values"].is_array())
      for (auto& v : sweep["random"]["model"]["values"])
        QSWEEP_RETURN_IF_ERROR(InlineOne(v, config_path, changed));
  }
  if (!changed) return toml_text;
  std::string out = "# model files inlined by qsweep\n";
  QSWEEP_RETURN_IF_ERROR(WriteTable(doc, "", out));
  return out;
}

}  // namespace qsweep
