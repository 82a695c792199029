#include "worker/core/data/jsc_loader.h"

#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/core/data/csv.h"

namespace qsweep {
namespace {

// Owns one HDF5 identifier.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// The Debian HDF5 build is not thread-safe: one reader at a time.
std::mutex& Hdf5Mutex() {
  static auto* m = new std::mutex;
  return *m;
}

void SilenceHdf5Errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string TopLevelNames(hid_t file) {
  H5G_info_t info;
  if (H5Gget_info(file, &info) < 0) return "(unreadable)";
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks && i < 20; ++i) {
    char buf[256];
    ssize_t n =
        H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, sizeof buf, H5P_DEFAULT);
    if (n >= 0) names.emplace_back(buf);
  }
  return names.empty() ? "(none)" : absl::StrJoin(names, ", ");
}

std::string MemberNames(hid_t type) {
  std::vector<std::string> names;
  const int n = H5Tget_nmembers(type);
  for (int i = 0; i < n; ++i) {
    char* name = H5Tget_member_name(type, static_cast<unsigned>(i));
    if (name) {
      names.emplace_back(name);
      H5free_memory(name);
    }
  }
  return absl::StrJoin(names, ", ");
}

// An open `t_allpar_new` with its layout checked.
struct OpenTable {
  std::unique_ptr<H5Id> file, dset, type, space;
  int64_t rows = 0;
};

absl::Status CheckFields(const std::string& path, hid_t type) {
  std::vector<std::string> wanted = JscFeatureNames();
  wanted.insert(wanted.end(), JscLabelNames().begin(), JscLabelNames().end());
  for (const std::string& f : wanted) {
    const int idx = H5Tget_member_index(type, f.c_str());
    if (idx < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": dataset '", kJscTable, "' has no field '", f, "'; it has: ", MemberNames(type)));
    }
    const H5T_class_t cls = H5Tget_member_class(type, static_cast<unsigned>(idx));
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": field '", f, "' of '", kJscTable,
                       "' is not numeric (float or integer required)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<OpenTable> OpenJscTable(const std::string& path) {
  SilenceHdf5Errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("JSC data file ", path, " does not exist; run `qsweep data fetch jsc`"));
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     " is not an HDF5 file (corrupt or wrong file); expected MASE's "
                     "JSC file with dataset '",
                     kJscTable, "'"));
  }
  OpenTable t;
  t.file = std::make_unique<H5Id>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!t.file->ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot open HDF5 file ", path, " (corrupt?)"));
  }
  if (H5Lexists(t.file->get(), kJscTable, H5P_DEFAULT) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no dataset '", kJscTable, "' (the file has: ", TopLevelNames(t.file->get()), ")"));
  }
  t.dset = std::make_unique<H5Id>(H5Dopen2(t.file->get(), kJscTable, H5P_DEFAULT), H5Dclose);
  if (!t.dset->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", kJscTable, "' is not a readable dataset"));
  }
  t.type = std::make_unique<H5Id>(H5Dget_type(t.dset->get()), H5Tclose);
  if (!t.type->ok() || H5Tget_class(t.type->get()) != H5T_COMPOUND) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": dataset '", kJscTable,
                     "' is not a compound (structured) array with named fields"));
  }
  if (absl::Status s = CheckFields(path, t.type->get()); !s.ok()) return s;
  t.space = std::make_unique<H5Id>(H5Dget_space(t.dset->get()), H5Sclose);
  const hssize_t n = t.space->ok() ? H5Sget_simple_extent_npoints(t.space->get()) : -1;
  if (n < 0) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read the shape of '", kJscTable, "'"));
  }
  t.rows = static_cast<int64_t>(n);
  return t;
}

// Reads rows [start, start+count) of the 21 fields as doubles.
absl::Status ReadChunk(const std::string& path, const OpenTable& t, hid_t mem_type, hsize_t start,
                       hsize_t count, std::vector<double>& buf) {
  if (H5Sget_simple_extent_ndims(t.space->get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", kJscTable, "' must be one-dimensional"));
  }
  H5Id mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  if (H5Sselect_hyperslab(t.space->get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr) < 0 ||
      H5Dread(t.dset->get(), mem_type, mem_space.get(), t.space->get(), H5P_DEFAULT, buf.data()) <
          0) {
    return absl::DataLossError(absl::StrCat(path, ": failed to read rows ", start, "..",
                                            start + count, " of '", kJscTable,
                                            "' (file truncated or corrupt?)"));
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& JscFeatureNames() {
  static const auto* names = new std::vector<std::string>{
      "j_zlogz",         "j_c1_b0_mmdt",    "j_c1_b1_mmdt", "j_c1_b2_mmdt",
      "j_c2_b1_mmdt",    "j_c2_b2_mmdt",    "j_d2_b1_mmdt", "j_d2_b2_mmdt",
      "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt", "j_m2_b1_mmdt", "j_m2_b2_mmdt",
      "j_n2_b1_mmdt",    "j_n2_b2_mmdt",    "j_mass_mmdt",  "j_multiplicity"};
  return *names;
}

const std::vector<std::string>& JscLabelNames() {
  static const auto* names = new std::vector<std::string>{"j_g", "j_q", "j_w", "j_z", "j_t"};
  return *names;
}

absl::StatusOr<int64_t> VerifyJscHdf5(const std::string& path) {
  std::lock_guard<std::mutex> lock(Hdf5Mutex());
  auto t = OpenJscTable(path);
  if (!t.ok()) return t.status();
  return t->rows;
}

absl::StatusOr<RawTable> ReadJscHdf5(const std::string& path) {
  std::lock_guard<std::mutex> lock(Hdf5Mutex());
  auto opened = OpenJscTable(path);
  if (!opened.ok()) return opened.status();
  const OpenTable& t = *opened;
  const auto& feats = JscFeatureNames();
  const auto& labs = JscLabelNames();
  const size_t nf = feats.size(), nl = labs.size(), width = nf + nl;
  H5Id mem_type(H5Tcreate(H5T_COMPOUND, width * sizeof(double)), H5Tclose);
  for (size_t i = 0; i < width; ++i) {
    const std::string& name = i < nf ? feats[i] : labs[i - nf];
    H5Tinsert(mem_type.get(), name.c_str(), i * sizeof(double), H5T_NATIVE_DOUBLE);
  }
  RawTable out;
  out.rows = t.rows;
  out.n_features = static_cast<int64_t>(nf);
  out.feature_names = feats;
  out.class_names = labs;
  out.n_key_extra = static_cast<int64_t>(nl);
  out.x.resize(static_cast<size_t>(t.rows) * nf);
  out.key_extra.resize(static_cast<size_t>(t.rows) * nl);
  out.y.resize(static_cast<size_t>(t.rows));
  constexpr hsize_t kChunk = 65536;
  std::vector<double> buf;
  for (hsize_t start = 0; start < static_cast<hsize_t>(t.rows); start += kChunk) {
    const hsize_t count = std::min<hsize_t>(kChunk, t.rows - start);
    buf.resize(count * width);
    if (auto s = ReadChunk(path, t, mem_type.get(), start, count, buf); !s.ok()) return s;
    for (hsize_t r = 0; r < count; ++r) {
      const double* row = &buf[r * width];
      const size_t dst = static_cast<size_t>(start + r);
      for (size_t j = 0; j < nf; ++j) {
        if (!std::isfinite(row[j])) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": row ", dst, " field '", feats[j],
                                                         "' is not finite (", row[j], ")"));
        }
        out.x[dst * nf + j] = row[j];
      }
      size_t best = 0;
      for (size_t j = 0; j < nl; ++j) {
        out.key_extra[dst * nl + j] = row[nf + j];
        if (row[nf + j] > row[nf + best]) best = j;
      }
      out.y[dst] = static_cast<int64_t>(best);
    }
  }
  return out;
}

absl::StatusOr<RawTable> ReadJscOpenmlCsv(const std::string& path) {
  CsvTableOptions opt;
  for (const std::string& f : JscFeatureNames()) {
    opt.feature_columns.push_back(absl::StrCat(f, "|", f.substr(2)));
  }
  opt.label_column = "class";
  opt.class_order = {"g", "q", "w", "z", "t"};
  auto t = ReadCsvTable(path, opt);
  if (!t.ok()) return t.status();
  t->class_names = JscLabelNames();
  return t;
}

absl::StatusOr<RawTable> ReadJscSource(const std::string& path) {
  if (absl::EndsWithIgnoreCase(path, ".csv")) return ReadJscOpenmlCsv(path);
  return ReadJscHdf5(path);
}

}  // namespace qsweep
