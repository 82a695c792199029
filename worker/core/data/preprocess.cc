#include "worker/core/data/preprocess.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/core/data/numpy_random.h"

namespace qsweep {
namespace {

// Canonical bit pattern for equality/hashing: -0.0 -> 0.0, any NaN -> one NaN.
uint64_t CanonicalBits(double v) {
  if (v == 0.0) v = 0.0;
  if (std::isnan(v)) v = std::numeric_limits<double>::quiet_NaN();
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

// Row view for the duplicate hash table.
class RowKeys {
 public:
  explicit RowKeys(const RawTable& t) : t_(t) {}
  uint64_t Hash(int64_t r) const {
    uint64_t h = 1469598103934665603ULL;
    ForEach(r, [&h](uint64_t bits) {
      h ^= bits + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
      h *= 1099511628211ULL;
    });
    return h;
  }
  bool Equal(int64_t a, int64_t b) const {
    const int64_t f = t_.n_features, e = t_.n_key_extra;
    for (int64_t j = 0; j < f; ++j) {
      if (CanonicalBits(t_.x[a * f + j]) != CanonicalBits(t_.x[b * f + j])) return false;
    }
    for (int64_t j = 0; j < e; ++j) {
      if (CanonicalBits(t_.key_extra[a * e + j]) != CanonicalBits(t_.key_extra[b * e + j]))
        return false;
    }
    return t_.y[a] == t_.y[b];
  }

 private:
  template <typename F>
  void ForEach(int64_t r, F&& f) const {
    const int64_t nf = t_.n_features, e = t_.n_key_extra;
    for (int64_t j = 0; j < nf; ++j) f(CanonicalBits(t_.x[r * nf + j]));
    for (int64_t j = 0; j < e; ++j) f(CanonicalBits(t_.key_extra[r * e + j]));
    f(static_cast<uint64_t>(t_.y[r]));
  }
  const RawTable& t_;
};

absl::Status CheckShape(const RawTable& t) {
  if (t.rows < 0 || t.n_features <= 0 || t.x.size() != static_cast<size_t>(t.rows * t.n_features) ||
      t.y.size() != static_cast<size_t>(t.rows) ||
      t.key_extra.size() != static_cast<size_t>(t.rows * t.n_key_extra)) {
    return absl::InvalidArgumentError(
        "preprocess: table shapes are inconsistent (rows, n_features, x, y)");
  }
  if (t.feature_names.size() != static_cast<size_t>(t.n_features) || t.class_names.empty()) {
    return absl::InvalidArgumentError("preprocess: feature names or class names are missing");
  }
  for (int64_t v : t.y) {
    if (v < 0 || v >= static_cast<int64_t>(t.class_names.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocess: label ", v, " outside [0, ", t.class_names.size(), ")"));
    }
  }
  return absl::OkStatus();
}

void CopyRows(const RawTable& t, const std::vector<int64_t>& rows, DataSplit& out) {
  const int64_t f = t.n_features;
  out.rows = static_cast<int64_t>(rows.size());
  out.x.resize(rows.size() * static_cast<size_t>(f));
  out.y.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    out.y[i] = t.y[rows[i]];
  }
  // x is filled by the scaler (it needs the source's double values).
}

// StandardScaler fit on the train rows: mean and population std in double,
// with sklearn's two-pass correction; zero (or ~zero) std becomes 1.
void FitScaler(const RawTable& t, const std::vector<int64_t>& train, std::vector<double>& mean,
               std::vector<double>& scale) {
  const int64_t f = t.n_features;
  const double n = static_cast<double>(train.size());
  mean.assign(f, 0.0);
  scale.assign(f, 1.0);
  for (int64_t r : train)
    for (int64_t j = 0; j < f; ++j) mean[j] += t.x[r * f + j];
  for (int64_t j = 0; j < f; ++j) mean[j] /= n;
  std::vector<double> sum_d(f, 0.0), sum_d2(f, 0.0);
  for (int64_t r : train) {
    for (int64_t j = 0; j < f; ++j) {
      const double d = t.x[r * f + j] - mean[j];
      sum_d[j] += d;
      sum_d2[j] += d * d;
    }
  }
  for (int64_t j = 0; j < f; ++j) {
    const double var = (sum_d2[j] - sum_d[j] * sum_d[j] / n) / n;
    const double s = std::sqrt(var > 0.0 ? var : 0.0);
    scale[j] = s < 10.0 * std::numeric_limits<double>::epsilon() ? 1.0 : s;
  }
}

void ApplyScaler(const RawTable& t, const std::vector<int64_t>& rows,
                 const std::vector<double>& mean, const std::vector<double>& scale,
                 DataSplit& out) {
  const int64_t f = t.n_features;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double* src = &t.x[rows[i] * f];
    float* dst = &out.x[i * f];
    for (int64_t j = 0; j < f; ++j) {
      dst[j] = static_cast<float>((src[j] - mean[j]) / scale[j]);
    }
  }
}

}  // namespace

std::vector<int64_t> UniqueRowIndices(const RawTable& table) {
  RowKeys keys(table);
  std::unordered_multimap<uint64_t, int64_t> seen;
  seen.reserve(static_cast<size_t>(table.rows));
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(table.rows));
  for (int64_t r = 0; r < table.rows; ++r) {
    const uint64_t h = keys.Hash(r);
    bool dup = false;
    auto [lo, hi] = seen.equal_range(h);
    for (auto it = lo; it != hi && !dup; ++it) dup = keys.Equal(it->second, r);
    if (dup) continue;
    seen.emplace(h, r);
    kept.push_back(r);
  }
  return kept;
}

int64_t TestRowCount(int64_t n, double test_size) {
  return static_cast<int64_t>(std::ceil(test_size * static_cast<double>(n)));
}

absl::StatusOr<Dataset> Preprocess(const RawTable& table, const PreprocessOptions& options) {
  if (absl::Status s = CheckShape(table); !s.ok()) return s;
  if (!(options.test_size > 0.0 && options.test_size < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocess: test_size must be in (0, 1), got ", options.test_size));
  }
  std::vector<int64_t> kept;
  if (options.drop_duplicates) {
    kept = UniqueRowIndices(table);
  } else {
    kept.resize(static_cast<size_t>(table.rows));
    for (int64_t r = 0; r < table.rows; ++r) kept[r] = r;
  }
  const auto n = static_cast<int64_t>(kept.size());
  const int64_t n_test = TestRowCount(n, options.test_size);
  if (n < 2 || n_test < 1 || n - n_test < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocess: need at least 2 distinct rows for an 80/20 split, got ", n, " (",
                     table.rows, " before dropping duplicates)"));
  }
  auto perm = NumpyPermutation(n, options.split_seed);
  if (!perm.ok()) return perm.status();
  std::vector<int64_t> test_rows(n_test), train_rows(n - n_test);
  for (int64_t i = 0; i < n_test; ++i) test_rows[i] = kept[(*perm)[i]];
  for (int64_t i = n_test; i < n; ++i) train_rows[i - n_test] = kept[(*perm)[i]];

  Dataset ds;
  ds.n_features = table.n_features;
  ds.n_classes = static_cast<int64_t>(table.class_names.size());
  ds.feature_names = table.feature_names;
  ds.class_names = table.class_names;
  std::vector<double> mean, scale;
  FitScaler(table, train_rows, mean, scale);
  CopyRows(table, train_rows, ds.train_val);
  CopyRows(table, test_rows, ds.test);
  ApplyScaler(table, train_rows, mean, scale, ds.train_val);
  ApplyScaler(table, test_rows, mean, scale, ds.test);
  ds.scaler_mean.assign(mean.begin(), mean.end());
  ds.scaler_std.assign(scale.begin(), scale.end());
  return ds;
}

}  // namespace qsweep
