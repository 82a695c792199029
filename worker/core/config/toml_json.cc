#include "worker/core/config/toml_json.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qsweep {
namespace {

nlohmann::ordered_json Convert(const toml::node& node) {
  if (auto* t = node.as_table()) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    // toml++ tables are sorted maps; recover file order from source positions.
    std::vector<std::pair<const toml::key*, const toml::node*>> items;
    for (auto&& [k, v] : *t) items.emplace_back(&k, &v);
    std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
      auto pa = a.first->source().begin, pb = b.first->source().begin;
      return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
    });
    for (auto& [k, v] : items) o[std::string(k->str())] = Convert(*v);
    return o;
  }
  if (auto* a = node.as_array()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (auto& e : *a) arr.push_back(Convert(e));
    return arr;
  }
  if (auto v = node.value_exact<std::string>()) {
    if (*v == "NA") return nullptr;
    return *v;
  }
  if (auto v = node.value_exact<int64_t>()) return *v;
  if (auto v = node.value_exact<double>()) {
    // JSON has no NaN/inf (nlohmann would turn them into null, i.e. "NA"):
    // keep them as text so that validation reports them as not a number.
    if (!std::isfinite(*v)) return std::isnan(*v) ? "nan" : (*v > 0 ? "inf" : "-inf");
    return *v;
  }
  if (auto v = node.value_exact<bool>()) return *v;
  if (auto v = node.value_exact<toml::date>()) {
    std::ostringstream s;
    s << *v;
    return s.str();
  }
  if (auto v = node.value_exact<toml::time>()) {
    std::ostringstream s;
    s << *v;
    return s.str();
  }
  if (auto v = node.value_exact<toml::date_time>()) {
    std::ostringstream s;
    s << *v;
    return s.str();
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> ParseTomlToJson(const std::string& text,
                                                       const std::string& source) {
  try {
    toml::table tbl = toml::parse(text, source);
    return Convert(tbl);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":" << e.source().begin.column
        << ": invalid TOML: " << e.description();
    return absl::InvalidArgumentError(msg.str());
  }
}

absl::StatusOr<nlohmann::ordered_json> ParseTomlFileToJson(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("file '", path, "' cannot be opened"));
  std::stringstream buf;
  buf << f.rdbuf();
  return ParseTomlToJson(buf.str(), path);
}

}  // namespace qsweep
