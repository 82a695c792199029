// CSV sources: a header row naming the columns, then one row per sample of
// comma-separated numeric feature values and one label value. Fields may be
// wrapped in "double" or 'single' quotes; embedded commas are not supported.
// Blank lines are skipped; CRLF line ends are accepted.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/data/preprocess.h"

namespace qsweep {

struct CsvTableOptions {
  // Feature columns to read, in this order. Each entry may list alternatives
  // separated by '|' ("j_zlogz|zlogz"): the first present in the header wins.
  // Default: empty = every column except the label column, in file order.
  std::vector<std::string> feature_columns;
  // Name of the label column. Default: "" = the last column.
  std::string label_column;
  // Fixed label values in class-index order (e.g. {"g","q","w","z","t"}).
  // Default: empty = automatic: if every label is a non-negative integer it
  // is the class index itself (class names "0".."K-1"); otherwise the
  // distinct strings sorted ascending are classes 0..K-1.
  std::vector<std::string> class_order;
};

// Reads a CSV into a raw table (no preprocessing yet). Errors name the file,
// the 1-based line and the column: NOT_FOUND for a missing file,
// INVALID_ARGUMENT for a missing header/column, a wrong column count, a
// non-numeric, NaN or infinite value, or an unknown label.
absl::StatusOr<RawTable> ReadCsvTable(const std::string& path, const CsvTableOptions& options = {});

}  // namespace qsweep
