#include "worker/core/data/csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace qsweep {
namespace {

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

void SplitFields(absl::string_view line, std::vector<absl::string_view>& out) {
  out.clear();
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == absl::string_view::npos) {
      out.push_back(Trim(line.substr(start)));
      return;
    }
    out.push_back(Trim(line.substr(start, comma - start)));
    start = comma + 1;
  }
}

bool ParseDouble(absl::string_view s, double& v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool ParseNonNegativeInt(absl::string_view s, int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty() && v >= 0;
}

// Column indices chosen from the header.
struct Layout {
  std::vector<int> feature_cols;
  std::vector<std::string> feature_names;
  int label_col = -1;
  size_t n_cols = 0;
};

absl::StatusOr<Layout> ResolveLayout(const std::string& path,
                                     const std::vector<absl::string_view>& header,
                                     const CsvTableOptions& opt) {
  Layout lay;
  lay.n_cols = header.size();
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < header.size(); ++i) {
    index.emplace(std::string(header[i]), static_cast<int>(i));
  }
  const std::string all = absl::StrJoin(header, ", ");
  if (opt.label_column.empty()) {
    lay.label_col = static_cast<int>(header.size()) - 1;
  } else if (auto it = index.find(opt.label_column); it != index.end()) {
    lay.label_col = it->second;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ":1: label column '", opt.label_column,
                                                   "' not in the header; columns are: ", all));
  }
  if (opt.feature_columns.empty()) {
    for (size_t i = 0; i < header.size(); ++i) {
      if (static_cast<int>(i) == lay.label_col) continue;
      lay.feature_cols.push_back(static_cast<int>(i));
      lay.feature_names.emplace_back(header[i]);
    }
  }
  for (const std::string& want : opt.feature_columns) {
    int found = -1;
    for (absl::string_view alt : absl::StrSplit(want, '|')) {
      if (auto it = index.find(std::string(alt)); it != index.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: feature column '", want,
                                                     "' not in the header; columns are: ", all));
    }
    lay.feature_cols.push_back(found);
    lay.feature_names.push_back(want.substr(0, want.find('|')));
  }
  if (lay.feature_cols.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: no feature columns besides the label column (header: ", all, ")"));
  }
  return lay;
}

// Label handling: fixed order, or collected strings resolved at the end.
class LabelMapper {
 public:
  explicit LabelMapper(const std::vector<std::string>& order) : order_(order) {
    for (size_t i = 0; i < order.size(); ++i) fixed_.emplace(order[i], i);
  }
  // Returns the provisional id, or -1 for a label outside the fixed order.
  int64_t Add(absl::string_view s) {
    std::string key(s);
    if (!order_.empty()) {
      auto it = fixed_.find(key);
      return it == fixed_.end() ? -1 : static_cast<int64_t>(it->second);
    }
    auto [it, inserted] = seen_.emplace(key, seen_.size());
    return static_cast<int64_t>(it->second);
  }
  std::string Allowed() const { return absl::StrJoin(order_, ", "); }
  // Rewrites provisional ids into final class indices; fills class names.
  absl::Status Finish(const std::string& path, std::vector<int64_t>& y,
                      std::vector<std::string>& names) const;

 private:
  std::vector<std::string> order_;
  std::unordered_map<std::string, size_t> fixed_;
  std::unordered_map<std::string, size_t> seen_;
};

absl::Status LabelMapper::Finish(const std::string& path, std::vector<int64_t>& y,
                                 std::vector<std::string>& names) const {
  if (!order_.empty()) {
    names = order_;
    return absl::OkStatus();
  }
  std::vector<int64_t> remap(seen_.size());
  bool all_int = true;
  int64_t max_id = -1;
  for (const auto& [label, id] : seen_) {
    int64_t v;
    if (!ParseNonNegativeInt(label, v)) {
      all_int = false;
      break;
    }
    remap[id] = v;
    max_id = std::max(max_id, v);
  }
  if (all_int && max_id >= 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": integer class id ", max_id,
                     " is too large (class ids must be 0..K-1 with K < 100000)"));
  }
  if (all_int) {
    for (int64_t i = 0; i <= max_id; ++i) names.push_back(absl::StrCat(i));
  } else {
    std::vector<std::string> sorted;
    for (const auto& [label, id] : seen_) sorted.push_back(label);
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [label, id] : seen_) {
      remap[id] = std::lower_bound(sorted.begin(), sorted.end(), label) - sorted.begin();
    }
    names = std::move(sorted);
  }
  for (int64_t& v : y) v = remap[v];
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RawTable> ReadCsvTable(const std::string& path, const CsvTableOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open CSV file ", path));
  }
  std::string header_line;
  int64_t line_no = 0;
  while (std::getline(in, header_line)) {
    ++line_no;
    if (!Trim(header_line).empty()) break;
  }
  std::vector<absl::string_view> fields;
  SplitFields(header_line, fields);
  double probe;
  if (fields.empty() || Trim(header_line).empty() ||
      std::all_of(fields.begin(), fields.end(),
                  [&](absl::string_view f) { return ParseDouble(f, probe); })) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", line_no, ": a header row naming the columns is required"));
  }
  std::vector<std::string> header_store(fields.begin(), fields.end());
  std::vector<absl::string_view> header(header_store.begin(), header_store.end());
  auto layout = ResolveLayout(path, header, options);
  if (!layout.ok()) return layout.status();

  RawTable t;
  t.n_features = static_cast<int64_t>(layout->feature_cols.size());
  t.feature_names = layout->feature_names;
  LabelMapper labels(options.class_order);
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    SplitFields(line, fields);
    if (fields.size() != layout->n_cols) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected ", layout->n_cols,
                       " columns (as in the header), got ", fields.size()));
    }
    for (size_t k = 0; k < layout->feature_cols.size(); ++k) {
      const int c = layout->feature_cols[k];
      double v;
      if (!ParseDouble(fields[c], v) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": column '", header[c],
                                                       "' (column ", c + 1, "): '", fields[c],
                                                       "' is not a finite number"));
      }
      t.x.push_back(v);
    }
    absl::string_view lab = fields[layout->label_col];
    const int64_t id = lab.empty() ? -1 : labels.Add(lab);
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": column '", header[layout->label_col], "' (column ",
                       layout->label_col + 1, "): unknown label '", lab, "'",
                       options.class_order.empty() ? "" : "; allowed: ", labels.Allowed()));
    }
    t.y.push_back(id);
  }
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("read error in CSV file ", path));
  }
  t.rows = static_cast<int64_t>(t.y.size());
  if (t.rows == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the CSV file has a header but no data rows"));
  }
  if (auto s = labels.Finish(path, t.y, t.class_names); !s.ok()) return s;
  return t;
}

}  // namespace qsweep
