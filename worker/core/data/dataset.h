// Datasets: the real JSC loader (MASE's HDF5 file and the OpenML CSV, with
// MASE's preprocessing), the deterministic synthetic JSC-shaped generator,
// generic CSV import, and the prepared-dataset cache. Torch-free: features are
// plain float arrays, labels int64 class indices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

// One split, row-major [rows x n_features].
struct DataSplit {
  int64_t rows = 0;
  std::vector<float> x;
  std::vector<int64_t> y;
};

// A prepared dataset. Immutable once built; stored on disk as one binary file
// whose SHA-256 identifies it.
struct Dataset {
  std::string name;             // "jsc", "jsc-synthetic", or an imported name
  bool synthetic = false;       // true for generated data: every output says so
  int64_t synthetic_rows = 0;   // generator rows (before the split) if synthetic
  uint64_t synthetic_seed = 0;  // generator seed if synthetic
  int64_t n_features = 0;
  int64_t n_classes = 0;
  std::vector<std::string> feature_names;
  std::vector<std::string> class_names;
  DataSplit train_val;  // the training split; MASE validates on it too
  DataSplit test;
  std::vector<float> scaler_mean, scaler_std;  // StandardScaler fitted on train_val
  std::string sha256;  // of the prepared file's content (see prepared_file.h)
  std::string description;  // human-readable provenance (source, seed, rows, ...)
  // Where the rows came from, used to detect a stale cache: the source file
  // with its size and mtime, or the generator with its seed and rows.
  std::string source;

  // "jsc-synthetic (SYNTHETIC data, not JSC; seed 0, 986880 rows)" or "jsc".
  std::string DisplayName() const;
};

struct DatasetRequest {
  std::string name;            // "jsc", "jsc-synthetic", or an imported name
  std::string cache_dir;       // "" = DefaultDataDir()
  int64_t synthetic_rows = 0;  // 0 = JSC-sized (986,880 rows before the split)
  uint64_t synthetic_seed = 0;
  // For "jsc": the raw file to prepare from (MASE's HDF5 file, or the OpenML
  // CSV when it ends in ".csv"). Default: "" = look in cache_dir for the HDF5
  // file (kJscFileName), then for hls4ml_lhc_jets_hlf.csv.
  std::string source_path;
};

// Options of ImportCsvDataset (`qsweep data import`).
struct CsvImportOptions {
  std::string path;  // the CSV file (header row required)
  std::string name;  // dataset name: [a-z0-9._-], not a built-in name
  // Label column. Default: "" = the last column.
  std::string label_column;
  // Default: "" = DefaultDataDir().
  std::string cache_dir;
};

// $QSWEEP_DATA_DIR, else $XDG_CACHE_HOME/qsweep/datasets, else ~/.cache/qsweep/datasets.
std::string DefaultDataDir();

// Loads (preparing and caching on first use) the requested dataset.
// NOT_FOUND for an unknown name or a missing real JSC file (the message says
// how to fetch it); INVALID_ARGUMENT / DATA_LOSS naming the file and field for
// corrupt input.
absl::StatusOr<Dataset> LoadDataset(const DatasetRequest& request);

// Known dataset names: built-ins plus imported ones found in the cache.
std::vector<std::string> ListDatasets(const std::string& cache_dir);

// Imports a generic CSV (numeric feature columns plus a label column of
// integer class ids or strings, see csv.h), runs the same preprocessing as
// JSC (dedup, 80/20 split, StandardScaler) and stores it as
// <cache_dir>/<name>.qsds. INVALID_ARGUMENT for a bad name or bad CSV content
// (file, line and column named), NOT_FOUND for a missing file.
absl::StatusOr<Dataset> ImportCsvDataset(const CsvImportOptions& options);

// The prepared file LoadDataset uses for `request` (it may not exist yet).
std::string PreparedPath(const DatasetRequest& request);

}  // namespace qsweep
