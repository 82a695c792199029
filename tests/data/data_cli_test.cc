// `qsweep data ...` run in-process: export, info, list, import, fetch (with
// local file:// and unreachable URLs) and command-line errors.
#include "client/data_cli.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/jsc_reference.h"
#include "tests/data/test_util.h"
#include "worker/core/data/dataset.h"
#include "worker/core/data/jsc_loader.h"

namespace qsweep {
namespace {

using ::qsweep::testing::ReadFile;
using ::qsweep::testing::RunPython;
using ::qsweep::testing::ScratchDir;
using ::qsweep::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Run {
  int rc;
  std::string out, err;
};

Run Data(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int rc = RunDataCommand(args, out, err);
  return {rc, out.str(), err.str()};
}

TEST(DataCli, ExportWritesTheDatasetRowsAsCsv) {
  ScratchDir dir;
  auto r =
      Data({"export", "jsc-synthetic", "--split", "test", "--format", "csv", "-o", dir / "test.csv",
            "--synthetic-rows", "3000", "--synthetic-seed", "5", "--data-dir", dir.str()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SYNTHETIC"));
  DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir.str();
  req.synthetic_rows = 3000;
  req.synthetic_seed = 5;
  auto d = LoadDataset(req);
  ASSERT_TRUE(d.ok());
  const std::vector<std::string> lines =
      absl::StrSplit(ReadFile(dir / "test.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(static_cast<int64_t>(lines.size()), d->test.rows + 1);
  EXPECT_THAT(lines[0], StartsWith("j_zlogz,j_c1_b0_mmdt,"));
  EXPECT_THAT(lines[0], ::testing::EndsWith("j_multiplicity,label"));
  for (int64_t r2 = 0; r2 < d->test.rows; ++r2) {
    const std::vector<std::string> f = absl::StrSplit(lines[r2 + 1], ',');
    ASSERT_EQ(f.size(), 17u);
    for (int j = 0; j < 16; ++j) {
      float v;
      std::from_chars(f[j].data(), f[j].data() + f[j].size(), v);
      ASSERT_EQ(v, d->test.x[r2 * 16 + j]) << "row " << r2 << " col " << j;
    }
    ASSERT_EQ(f[16], std::to_string(d->test.y[r2]));
  }
}

TEST(DataCli, ExportReadsBackInNumpyLikeTheReferenceTrainer) {
  QSWEEP_REQUIRE_PYTHON("numpy");
  ScratchDir dir;
  ASSERT_EQ(Data({"export", "jsc-synthetic", "--split", "train", "-o", dir / "tr.csv",
                  "--synthetic-rows", "1000", "--data-dir", dir.str()})
                .rc,
            0);
  auto py = RunPython(
      "import sys, numpy as np\n"
      "a = np.loadtxt(sys.argv[1], delimiter=',', skiprows=1)\n"
      "print(a.shape[0], a.shape[1], int(a[:, 16].max()), round(abs(float(a[:, :16].mean())), 3))\n",
      {dir / "tr.csv"});
  ASSERT_EQ(py.exit_code, 0) << py.output;
  EXPECT_EQ(py.output, "800 17 4 0.0\n");
}

TEST(DataCli, InfoListAndImport) {
  ScratchDir dir;
  WriteFile(dir / "in.csv",
            "x1,x2,x3,species\n1,2,3,cat\n4,5,6,dog\n7,8,9,cat\n1,1,1,eel\n"
            "2,2,2,dog\n3,3,3,cat\n");
  auto imp = Data({"import", dir / "in.csv", "--name", "pets", "--data-dir", dir.str()});
  ASSERT_EQ(imp.rc, 0) << imp.err;
  auto info = Data({"info", "pets", "--data-dir", dir.str()});
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("synthetic:   no"));
  EXPECT_THAT(info.out, HasSubstr("features:    3 (x1, x2, x3)"));
  EXPECT_THAT(info.out, HasSubstr("classes:     3 (cat, dog, eel)"));
  EXPECT_THAT(info.out, HasSubstr("rows:        4 train+val"));
  EXPECT_THAT(info.out, HasSubstr("2 test"));
  EXPECT_THAT(info.out, ::testing::ContainsRegex("sha256: +[0-9a-f]{64}"));
  auto list = Data({"list", "--data-dir", dir.str()});
  ASSERT_EQ(list.rc, 0);
  EXPECT_THAT(list.out, HasSubstr("jsc\t"));
  EXPECT_THAT(list.out, HasSubstr("jsc-synthetic\t"));
  EXPECT_THAT(list.out, HasSubstr("pets\timported"));
  auto syn = Data({"info", "jsc-synthetic", "--synthetic-rows", "500", "--data-dir", dir.str()});
  ASSERT_EQ(syn.rc, 0) << syn.err;
  EXPECT_THAT(syn.out, HasSubstr("synthetic:   yes"));
  EXPECT_THAT(syn.out, HasSubstr("validation = train+val"));
}

TEST(DataCli, ErrorsAreOneLineAndNonZero) {
  ScratchDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  WriteFile(dir / "bad.csv", "a,label\n1,0\nx,1\n");
  const std::vector<Case> cases = {
      {{"export", "nope", "--split", "train", "-o", dir / "o.csv", "--data-dir", dir.str()},
       "unknown dataset 'nope'; known datasets: jsc, jsc-synthetic"},
      {{"export", "jsc-synthetic", "--split", "valid", "-o", dir / "o.csv"}, "--split"},
      {{"export", "jsc-synthetic", "--split", "train", "--format", "npy", "-o", "x"}, "--format"},
      {{"export", "jsc-synthetic", "--split", "train", "-o", dir / "o.csv", "--synthetic-rows",
        "0"},
       "--synthetic-rows must be > 0"},
      {{"info", "jsc-synthetic", "--synthetic-rows", "-3"}, "--synthetic-rows must be > 0"},
      {{"info", "jsc", "--data-dir", dir.str()}, "qsweep data fetch jsc"},
      {{"info", "jsc", "--synthetic-rows", "5"}, "apply only to jsc-synthetic"},
      {{"import", dir / "bad.csv", "--name", "b", "--data-dir", dir.str()}, "bad.csv:3"},
      {{"import", dir / "missing.csv", "--name", "b", "--data-dir", dir.str()}, "missing.csv"},
      {{"frobnicate"}, "qsweep data"},
      {{}, "qsweep data"},
      {{"fetch", "mnist"}, "WHAT"},
  };
  for (const Case& c : cases) {
    auto r = Data(c.args);
    EXPECT_NE(r.rc, 0) << c.says;
    EXPECT_THAT(r.err, HasSubstr(c.says));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(DataCli, FetchOfflineFailsClearly) {
  ScratchDir dir;
  // Port 1 on loopback refuses connections at once: the offline case.
  auto r = Data({"fetch", "jsc", "--data-dir", dir.str(), "--url", "http://127.0.0.1:1/jsc"});
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(r.err, HasSubstr("could not download the JSC file from http://127.0.0.1:1/jsc"));
  EXPECT_THAT(r.err, HasSubstr("offline"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.str())) << "no partial file is left";
  // The environment override reaches the same path.
  setenv("QSWEEP_JSC_URL", "http://127.0.0.1:1/env", 1);
  auto e = Data({"fetch", "jsc", "--data-dir", dir.str()});
  unsetenv("QSWEEP_JSC_URL");
  EXPECT_NE(e.rc, 0);
  EXPECT_THAT(e.err, HasSubstr("http://127.0.0.1:1/env"));
}

TEST(DataCli, FetchVerifiesTheDownload) {
  QSWEEP_REQUIRE_PYTHON("numpy, h5py");
  ScratchDir dir;
  WriteFile(dir / "page.html", "<html>not hdf5</html>");
  auto bad =
      Data({"fetch", "jsc", "--data-dir", dir / "d1", "--url", "file://" + dir / "page.html"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_THAT(bad.err, HasSubstr("not the expected JSC HDF5 file"));
  EXPECT_FALSE(std::filesystem::exists(dir / "d1/" + kJscFileName));
  const std::string prefix = dir / "ref";
  ASSERT_EQ(RunPython(testing::kJscReferenceScript, {prefix, "400", "6", "h5"}).exit_code, 0);
  auto ok = Data({"fetch", "jsc", "--data-dir", dir / "d2", "--url", "file://" + prefix + ".h5"});
  ASSERT_EQ(ok.rc, 0) << ok.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "d2/" + kJscFileName));
  auto info = Data({"info", "jsc", "--data-dir", dir / "d2"});
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("synthetic:   no"));
}

}  // namespace
}  // namespace qsweep
