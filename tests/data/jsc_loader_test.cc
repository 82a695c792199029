// The real-JSC path: HDF5 and OpenML CSV files written in the real layouts
// by h5py/numpy, loaded by qsweep and compared with an independent numpy
// computation of MASE's preprocessing; plus every bad-input case.
#include "worker/core/data/jsc_loader.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/jsc_reference.h"
#include "tests/data/test_util.h"
#include "worker/core/data/dataset.h"

namespace qsweep {
namespace {

using ::qsweep::testing::ReadNumbers;
using ::qsweep::testing::RunPython;
using ::qsweep::testing::ScratchDir;
using ::testing::HasSubstr;

void ExpectSplitEq(const DataSplit& got, const std::string& prefix, const std::string& x_ext,
                   const std::string& y_ext) {
  const auto x = ReadNumbers<double>(prefix + x_ext);
  const auto y = ReadNumbers<int64_t>(prefix + y_ext);
  ASSERT_EQ(got.rows, static_cast<int64_t>(y.size()));
  ASSERT_EQ(got.x.size(), x.size());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(got.y[i], y[i]) << "row " << i;
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(got.x[i], x[i], 1e-6 + 1e-6 * std::fabs(x[i])) << "element " << i;
  }
}

// Loads `source` as "jsc" and checks it against the reference files.
void CheckAgainstReference(const std::string& source, const std::string& prefix,
                           const std::string& cache) {
  DatasetRequest req;
  req.name = "jsc";
  req.cache_dir = cache;
  req.source_path = source;
  auto ds = LoadDataset(req);
  ASSERT_TRUE(ds.ok()) << ds.status();
  const auto counts = ReadNumbers<int64_t>(prefix + ".nkept");
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_LT(counts[1], counts[0]) << "the reference must contain duplicates";
  EXPECT_EQ(ds->train_val.rows + ds->test.rows, counts[1]);
  EXPECT_EQ(ds->test.rows, static_cast<int64_t>(std::ceil(0.2 * counts[1])));
  EXPECT_EQ(ds->feature_names, JscFeatureNames());
  EXPECT_EQ(ds->class_names, JscLabelNames());
  EXPECT_FALSE(ds->synthetic);
  EXPECT_THAT(ds->description, HasSubstr("validation = train+val"));
  ExpectSplitEq(ds->train_val, prefix, ".xtr", ".ytr");
  ExpectSplitEq(ds->test, prefix, ".xte", ".yte");
  const auto mean = ReadNumbers<double>(prefix + ".mean");
  const auto stdv = ReadNumbers<double>(prefix + ".std");
  ASSERT_EQ(ds->scaler_mean.size(), 16u);
  for (int j = 0; j < 16; ++j) {
    EXPECT_NEAR(ds->scaler_mean[j], mean[j], 1e-6 * (1 + std::fabs(mean[j])));
    EXPECT_NEAR(ds->scaler_std[j], stdv[j], 1e-6 * stdv[j]);
  }
  EXPECT_EQ(ds->scaler_std[1], 1.0f) << "constant column keeps std 1";
  // A second load comes from the cache and is the same prepared file.
  auto again = LoadDataset(req);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sha256, ds->sha256);
  EXPECT_EQ(again->train_val.x, ds->train_val.x);
  EXPECT_TRUE(std::filesystem::exists(cache + "/jsc.qsds"));
}

TEST(JscLoader, Hdf5MatchesNumpyReference) {
  QSWEEP_REQUIRE_PYTHON("numpy, h5py");
  ScratchDir dir;
  for (auto [rows, seed] : {std::pair{997, 1}, std::pair{2500, 2}}) {
    const std::string prefix = dir / absl::StrCat("jsc", rows);
    auto py = RunPython(testing::kJscReferenceScript,
                        {prefix, absl::StrCat(rows), absl::StrCat(seed), "h5"});
    ASSERT_EQ(py.exit_code, 0) << py.output;
    CheckAgainstReference(prefix + ".h5", prefix, dir / absl::StrCat("cache", rows));
  }
}

TEST(JscLoader, OpenmlCsvMatchesNumpyReferenceInMaseClassOrder) {
  QSWEEP_REQUIRE_PYTHON("numpy");
  ScratchDir dir;
  const std::string prefix = dir / "openml";
  auto py = RunPython(testing::kJscReferenceScript, {prefix, "1500", "3", "csv"});
  ASSERT_EQ(py.exit_code, 0) << py.output;
  CheckAgainstReference(prefix + ".csv", prefix, dir / "cache");
}

TEST(JscLoader, FindsTheFetchedFileInTheDataDir) {
  QSWEEP_REQUIRE_PYTHON("numpy, h5py");
  ScratchDir dir;
  const std::string prefix = dir / "ref";
  ASSERT_EQ(RunPython(testing::kJscReferenceScript, {prefix, "300", "4", "h5"}).exit_code, 0);
  std::filesystem::copy_file(prefix + ".h5", dir / kJscFileName);
  DatasetRequest req;
  req.name = "jsc";
  req.cache_dir = dir.str();
  auto ds = LoadDataset(req);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->description, HasSubstr(kJscFileName));
}

TEST(JscLoader, MissingDataSaysHowToFetch) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc";
  req.cache_dir = dir.str();
  auto ds = LoadDataset(req);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("qsweep data fetch jsc"));
  auto raw = ReadJscHdf5(dir / "nope.h5");
  EXPECT_EQ(raw.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(raw.status().message(), HasSubstr("nope.h5"));
  req.source_path = dir / "missing.h5";
  EXPECT_EQ(LoadDataset(req).status().code(), absl::StatusCode::kNotFound);
}

TEST(JscLoader, CorruptHdf5IsAClearError) {
  ScratchDir dir;
  testing::WriteFile(dir / "bad.h5", std::string(4096, 'x'));
  auto r = ReadJscHdf5(dir / "bad.h5");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("bad.h5"));
  EXPECT_THAT(r.status().message(), HasSubstr("not an HDF5 file"));
}

TEST(JscLoader, TruncatedHdf5IsAClearError) {
  QSWEEP_REQUIRE_PYTHON("numpy, h5py");
  ScratchDir dir;
  const std::string prefix = dir / "t";
  ASSERT_EQ(RunPython(testing::kJscReferenceScript, {prefix, "3000", "5", "h5"}).exit_code, 0);
  const std::string bytes = testing::ReadFile(prefix + ".h5");
  testing::WriteFile(dir / "cut.h5", bytes.substr(0, bytes.size() / 2));
  auto r = ReadJscHdf5(dir / "cut.h5");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("cut.h5"));
}

TEST(JscLoader, WrongLayoutsNameTheProblem) {
  QSWEEP_REQUIRE_PYTHON("numpy, h5py");
  ScratchDir dir;
  auto py = RunPython(R"PY(
import sys, numpy as np, h5py
d = sys.argv[1]
with h5py.File(d + "/no_table.h5", "w") as h: h.create_dataset("something_else", data=np.arange(4))
with h5py.File(d + "/plain.h5", "w") as h: h.create_dataset("t_allpar_new", data=np.zeros((4, 21)))
names = ["j_zlogz", "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt", "j_c2_b2_mmdt",
         "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt", "j_m2_b1_mmdt",
         "j_m2_b2_mmdt", "j_n2_b1_mmdt", "j_n2_b2_mmdt", "j_multiplicity", "j_g", "j_q", "j_w", "j_z", "j_t"]
with h5py.File(d + "/no_mass.h5", "w") as h:
    h.create_dataset("t_allpar_new", data=np.zeros(4, dtype=[(n, np.float32) for n in names]))
dt = [(n, np.float32) for n in names] + [("j_mass_mmdt", "S8")]
with h5py.File(d + "/text_mass.h5", "w") as h:
    h.create_dataset("t_allpar_new", data=np.zeros(4, dtype=dt))
)PY",
                      {dir.str()});
  ASSERT_EQ(py.exit_code, 0) << py.output;
  struct Case {
    const char* file;
    const char* says;
  };
  for (const Case& c :
       {Case{"no_table.h5", "no dataset 't_allpar_new'"}, Case{"no_table.h5", "something_else"},
        Case{"plain.h5", "not a compound"}, Case{"no_mass.h5", "no field 'j_mass_mmdt'"},
        Case{"text_mass.h5", "'j_mass_mmdt'"}}) {
    auto r = ReadJscHdf5(dir / c.file);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.file;
    EXPECT_THAT(r.status().message(), HasSubstr(c.says)) << c.file;
    EXPECT_THAT(r.status().message(), HasSubstr(c.file));
  }
}

TEST(JscLoader, OpenmlCsvRejectsUnknownClass) {
  ScratchDir dir;
  std::string header;
  for (const auto& f : JscFeatureNames()) header += f.substr(2) + ",";
  std::string row;
  for (int i = 0; i < 16; ++i) row += "1.5,";
  testing::WriteFile(dir / "o.csv", header + "class\n" + row + "g\n" + row + "b\n");
  auto r = ReadJscOpenmlCsv(dir / "o.csv");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("o.csv:3"));
  EXPECT_THAT(r.status().message(), HasSubstr("unknown label 'b'"));
  EXPECT_THAT(r.status().message(), HasSubstr("allowed: g, q, w, z, t"));
}

}  // namespace
}  // namespace qsweep
