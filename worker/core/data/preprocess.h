// MASE's JSC preprocessing, shared by every dataset source: drop exact
// duplicate rows (first occurrence kept, order preserved), split 80/20 exactly
// like sklearn `train_test_split(test_size=0.2, random_state=42)`, and
// standardise with a StandardScaler fitted on train+val (population std, zero
// std replaced by 1) applied to both splits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/data/dataset.h"

namespace qsweep {

// Rows as read from a source, before preprocessing. Values are doubles so
// that duplicate detection sees the source's exact values.
struct RawTable {
  int64_t rows = 0;
  int64_t n_features = 0;
  std::vector<std::string> feature_names;
  std::vector<std::string> class_names;
  std::vector<double> x;   // [rows x n_features], row-major
  std::vector<int64_t> y;  // class index per row
  // Extra per-row columns that take part in duplicate detection only (the
  // raw one-hot label columns of the HDF5 file). [rows x n_key_extra].
  int64_t n_key_extra = 0;
  std::vector<double> key_extra;
};

struct PreprocessOptions {
  // Fraction of rows in the test split; n_test = ceil(test_size * n).
  // Default: 0.2 (MASE).
  double test_size = 0.2;
  // Seed of numpy's RandomState permutation. Default: 42 (MASE).
  uint64_t split_seed = 42;
  // Drop exact duplicate rows (features and label columns). Default: true.
  bool drop_duplicates = true;
};

// Indices of the rows kept by pandas `drop_duplicates()`: first occurrences,
// in their original order. -0.0 equals 0.0 and all NaNs are equal.
std::vector<int64_t> UniqueRowIndices(const RawTable& table);

// sklearn-compatible test-row count: ceil(test_size * n).
int64_t TestRowCount(int64_t n, double test_size);

// Runs dedup, split and scaling. Fills the splits, scaler, shapes and names
// of the returned dataset (name/description/sha256 are left to the caller).
// INVALID_ARGUMENT when fewer than 2 rows remain or the table is malformed.
absl::StatusOr<Dataset> Preprocess(const RawTable& table, const PreprocessOptions& options = {});

}  // namespace qsweep
