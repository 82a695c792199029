#include "worker/core/data/dataset.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/core/data/csv.h"
#include "worker/core/data/jsc_loader.h"
#include "worker/core/data/prepared_file.h"
#include "worker/core/data/preprocess.h"
#include "worker/core/data/synthetic.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

constexpr char kSynthetic[] = "jsc-synthetic";
constexpr char kGeneratorVersion[] = "jsc-synthetic-v2";
constexpr int64_t kMaxSyntheticRows = 50'000'000;
constexpr char kSplitText[] =
    "80/20 split as sklearn train_test_split(test_size=0.2, random_state=42); "
    "features standardised by a StandardScaler fitted on train+val (population "
    "std); validation = train+val, as in MASE (there is no separate validation set)";

std::string CacheDir(const std::string& dir) { return dir.empty() ? DefaultDataDir() : dir; }

// "file=<path> size=<bytes> mtime=<ns>", or "" if the file does not exist.
std::string FileFingerprint(const std::string& path) {
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec);
  const auto size = fs::file_size(path, ec);
  if (ec) return "";
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return "";
  return absl::StrCat("file=", abs.string(), " size=", size,
                      " mtime=", mtime.time_since_epoch().count());
}

bool IsBuiltinCacheFile(const std::string& stem) {
  return stem == "jsc" || absl::StartsWith(stem, kSynthetic);
}

std::string SplitSummary(int64_t raw_rows, const Dataset& d) {
  const int64_t kept = d.train_val.rows + d.test.rows;
  return absl::StrCat(raw_rows, " rows, ", raw_rows - kept, " exact duplicates dropped -> ",
                      d.train_val.rows, " train+val / ", d.test.rows, " test rows; ", kSplitText);
}

absl::StatusOr<Dataset> WriteAndReturn(const std::string& path, Dataset d) {
  if (absl::Status s = WritePreparedFile(path, d); !s.ok()) return s;
  return d;
}

absl::StatusOr<Dataset> LoadSynthetic(const DatasetRequest& req, const std::string& dir) {
  if (req.synthetic_rows < 0 || req.synthetic_rows > kMaxSyntheticRows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic_rows must be in 1..", kMaxSyntheticRows, " (0 selects the JSC-sized default ",
        kJscSizedRows, "), got ", req.synthetic_rows));
  }
  const int64_t rows = req.synthetic_rows == 0 ? kJscSizedRows : req.synthetic_rows;
  const std::string path = PreparedPath(req);
  const std::string source =
      absl::StrCat("generator=", kGeneratorVersion, " seed=", req.synthetic_seed, " rows=", rows);
  auto cached = ReadPreparedFile(path);
  if (cached.ok() && cached->source == source) return cached;
  // Missing, stale or corrupt: the generator is always available, so rebuild.
  SyntheticOptions gen;
  gen.rows = rows;
  gen.seed = req.synthetic_seed;
  auto raw = GenerateSyntheticJsc(gen);
  if (!raw.ok()) return raw.status();
  auto d = Preprocess(*raw);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jsc-synthetic with ", rows, " rows: ", d.status().message()));
  }
  d->name = kSynthetic;
  d->synthetic = true;
  d->synthetic_rows = rows;
  d->synthetic_seed = req.synthetic_seed;
  d->source = source;
  d->description =
      absl::StrCat("SYNTHETIC JSC-shaped data, NOT the real JSC data set (generator ",
                   kGeneratorVersion, ", seed ", req.synthetic_seed, "): ", SplitSummary(rows, *d));
  return WriteAndReturn(path, *std::move(d));
}

std::string FindJscSource(const DatasetRequest& req, const std::string& dir) {
  if (!req.source_path.empty()) return req.source_path;
  for (const char* name : {kJscFileName, kJscOpenmlFileName}) {
    const std::string p = absl::StrCat(dir, "/", name);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return "";
}

absl::StatusOr<Dataset> PrepareJsc(const std::string& src, const std::string& path) {
  auto raw = ReadJscSource(src);
  if (!raw.ok()) return raw.status();
  auto d = Preprocess(*raw);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat(src, ": ", d.status().message()));
  const bool csv = absl::EndsWithIgnoreCase(src, ".csv");
  d->name = "jsc";
  d->source = FileFingerprint(src);
  d->description = absl::StrCat(
      "JSC (real data) from ", src,
      csv ? " (OpenML CSV hls4ml_lhc_jets_hlf, a different packaging than MASE's HDF5 file; "
            "classes g,q,t,w,z mapped to MASE's order g,q,w,z,t)"
          : " (MASE's HDF5 file, table t_allpar_new)",
      ": ", SplitSummary(raw->rows, *d));
  return WriteAndReturn(path, *std::move(d));
}

absl::StatusOr<Dataset> LoadJsc(const DatasetRequest& req, const std::string& dir) {
  const std::string path = PreparedPath(req);
  const std::string src = FindJscSource(req, dir);
  auto cached = ReadPreparedFile(path);
  if (src.empty()) {
    if (cached.ok() || !absl::IsNotFound(cached.status())) return cached;
    return absl::NotFoundError(absl::StrCat(
        "the real JSC data is not in ", dir, ": run `qsweep data fetch jsc` (downloads ",
        kJscFileName, "), or put the OpenML CSV there as ", kJscOpenmlFileName,
        "; the offline alternative is the dataset `jsc-synthetic`"));
  }
  if (!req.source_path.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(src, ec)) {
      return absl::NotFoundError(absl::StrCat("JSC source file ", src, " does not exist"));
    }
  }
  if (cached.ok() && cached->source == FileFingerprint(src)) return cached;
  return PrepareJsc(src, path);
}

absl::Status ValidateImportName(const std::string& name) {
  const bool chars_ok =
      !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-' &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      });
  if (!chars_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset name '", name,
        "' is invalid: use 1-64 characters from a-z, 0-9, '.', '_', '-', not starting with "
        "'.' or '-'"));
  }
  if (IsBuiltinCacheFile(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset name '", name, "' is reserved for the built-in datasets (jsc, jsc-synthetic)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Dataset::DisplayName() const {
  if (!synthetic) return name;
  return absl::StrCat(name, " (SYNTHETIC data, not JSC; seed ", synthetic_seed, ", ",
                      synthetic_rows, " rows)");
}

std::string DefaultDataDir() {
  if (const char* d = std::getenv("QSWEEP_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return absl::StrCat(x, "/qsweep/datasets");
  const char* home = std::getenv("HOME");
  return absl::StrCat(home && *home ? home : ".", "/.cache/qsweep/datasets");
}

std::string PreparedPath(const DatasetRequest& request) {
  const std::string dir = CacheDir(request.cache_dir);
  if (request.name == kSynthetic) {
    const int64_t rows = request.synthetic_rows == 0 ? kJscSizedRows : request.synthetic_rows;
    return absl::StrCat(dir, "/", kSynthetic, "-r", rows, "-s", request.synthetic_seed,
                        kPreparedExtension);
  }
  return absl::StrCat(dir, "/", request.name, kPreparedExtension);
}

absl::StatusOr<Dataset> LoadDataset(const DatasetRequest& request) {
  const std::string dir = CacheDir(request.cache_dir);
  if (request.name == kSynthetic) return LoadSynthetic(request, dir);
  if (request.name == "jsc") return LoadJsc(request, dir);
  const auto known = [&] { return absl::StrJoin(ListDatasets(dir), ", "); };
  if (ValidateImportName(request.name).ok()) {
    const std::string path = PreparedPath(request);
    std::error_code ec;
    if (fs::exists(path, ec)) return ReadPreparedFile(path);
  }
  return absl::NotFoundError(absl::StrCat("unknown dataset '", request.name, "'; known datasets: ",
                                          known(), " (import a CSV with `qsweep data import`)"));
}

std::vector<std::string> ListDatasets(const std::string& cache_dir) {
  std::vector<std::string> names = {"jsc", kSynthetic};
  std::vector<std::string> imported;
  std::error_code ec;
  for (fs::directory_iterator it(CacheDir(cache_dir), ec), end; !ec && it != end;
       it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != kPreparedExtension) continue;
    const std::string stem = p.stem().string();
    if (!IsBuiltinCacheFile(stem)) imported.push_back(stem);
  }
  std::sort(imported.begin(), imported.end());
  names.insert(names.end(), imported.begin(), imported.end());
  return names;
}

absl::StatusOr<Dataset> ImportCsvDataset(const CsvImportOptions& options) {
  if (absl::Status s = ValidateImportName(options.name); !s.ok()) return s;
  CsvTableOptions csv;
  csv.label_column = options.label_column;
  auto raw = ReadCsvTable(options.path, csv);
  if (!raw.ok()) return raw.status();
  auto d = Preprocess(*raw);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(options.path, ": ", d.status().message()));
  }
  d->name = options.name;
  d->source = FileFingerprint(options.path);
  d->description = absl::StrCat(
      "imported from CSV ", options.path, " (", d->n_features, " features, label column '",
      options.label_column.empty() ? "<last>" : options.label_column, "', classes ",
      absl::StrJoin(d->class_names, ","), "): ", SplitSummary(raw->rows, *d));
  DatasetRequest req;
  req.name = options.name;
  req.cache_dir = options.cache_dir;
  return WriteAndReturn(PreparedPath(req), *std::move(d));
}

}  // namespace qsweep
