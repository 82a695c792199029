// Generic CSV import: label mapping, column selection and every bad input.
#include "worker/core/data/csv.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"
#include "worker/core/data/dataset.h"

namespace qsweep {
namespace {

using ::qsweep::testing::ScratchDir;
using ::qsweep::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Status ReadError(const std::string& path, const std::string& text,
                       const CsvTableOptions& opt = {}) {
  WriteFile(path, text);
  return ReadCsvTable(path, opt).status();
}

TEST(Csv, StringLabelsMapToSortedIndices) {
  ScratchDir dir;
  WriteFile(dir / "s.csv", "a,b,kind\r\n1,2,zeta\r\n3,4,\"alpha\"\r\n\r\n5,6,mid\r\n7,8,alpha\r\n");
  auto t = ReadCsvTable(dir / "s.csv");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->class_names, ElementsAre("alpha", "mid", "zeta"));
  EXPECT_THAT(t->y, ElementsAre(2, 0, 1, 0));
  EXPECT_THAT(t->feature_names, ElementsAre("a", "b"));
  EXPECT_THAT(t->x, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST(Csv, IntegerLabelsAreClassIdsAndLabelColumnCanBeNamed) {
  ScratchDir dir;
  WriteFile(dir / "i.csv", "f0,y,f1,f2\n0.5,3,1e-3,-2\n1.5,0,+4,5\n2.5,1,6,7\n");
  CsvTableOptions opt;
  opt.label_column = "y";
  auto t = ReadCsvTable(dir / "i.csv", opt);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->feature_names, ElementsAre("f0", "f1", "f2"));
  EXPECT_THAT(t->class_names, ElementsAre("0", "1", "2", "3"));
  EXPECT_THAT(t->y, ElementsAre(3, 0, 1));
  EXPECT_THAT(t->x, ElementsAre(0.5, 0.001, -2, 1.5, 4, 5, 2.5, 6, 7));
}

TEST(Csv, BadValuesNameFileLineAndColumn) {
  ScratchDir dir;
  const std::string p = dir / "bad.csv";
  auto s = ReadError(p, "a,b,label\n1,2,0\n1,abc,1\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("bad.csv:3"));
  EXPECT_THAT(s.message(), HasSubstr("column 'b' (column 2)"));
  EXPECT_THAT(s.message(), HasSubstr("'abc'"));
  for (const char* v : {"nan", "NaN", "inf", "-inf", "1e999", ""}) {
    s = ReadError(p, std::string("a,b,label\n1,2,0\n3,") + v + ",1\n");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << v;
    EXPECT_THAT(s.message(), HasSubstr("bad.csv:3: column 'b'")) << v;
    EXPECT_THAT(s.message(), HasSubstr("not a finite number")) << v;
  }
}

TEST(Csv, WrongColumnCountNamesLine) {
  ScratchDir dir;
  auto s = ReadError(dir / "w.csv", "a,b,label\n1,2,0\n3,4,1\n5,1\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("w.csv:4: expected 3 columns"));
  EXPECT_THAT(s.message(), HasSubstr("got 2"));
  s = ReadError(dir / "w.csv", "a,b,label\n1,2,0,9\n");
  EXPECT_THAT(s.message(), HasSubstr("w.csv:2: expected 3 columns"));
}

TEST(Csv, HeaderAndLabelProblems) {
  ScratchDir dir;
  auto s = ReadError(dir / "h.csv", "1,2,0\n3,4,1\n");
  EXPECT_THAT(s.message(), HasSubstr("h.csv:1: a header row"));
  s = ReadError(dir / "h.csv", "");
  EXPECT_THAT(s.message(), HasSubstr("header row"));
  s = ReadError(dir / "h.csv", "a,b,label\n");
  EXPECT_THAT(s.message(), HasSubstr("no data rows"));
  s = ReadError(dir / "h.csv", "label\n1\n");
  EXPECT_THAT(s.message(), HasSubstr("no feature columns"));
  CsvTableOptions opt;
  opt.label_column = "target";
  s = ReadError(dir / "h.csv", "a,b,label\n1,2,0\n", opt);
  EXPECT_THAT(s.message(), HasSubstr("label column 'target' not in the header"));
  EXPECT_THAT(s.message(), HasSubstr("a, b, label"));
  s = ReadError(dir / "h.csv", "a,b,label\n1,2,\n");
  EXPECT_THAT(s.message(), HasSubstr("h.csv:2: column 'label' (column 3): unknown label ''"));
  EXPECT_EQ(ReadCsvTable(dir / "missing.csv").status().code(), absl::StatusCode::kNotFound);
}

TEST(Csv, ImportRunsPreprocessingAndCaches) {
  ScratchDir dir;
  // Feature f0 encodes the class so the mapping survives the split/scaler.
  std::string text = "f0,f1,cls\n";
  for (int i = 0; i < 200; ++i) {
    const char* cls[] = {"beta", "alpha", "gamma"};
    const int k = i % 3;
    text += std::to_string(k == 1 ? 0 : (k == 0 ? 10 : 20)) + "," + std::to_string(i) + "," +
            cls[k] + "\n";
  }
  text += "10,0,beta\n";  // exact duplicate of the first row: dropped
  WriteFile(dir / "imp.csv", text);
  CsvImportOptions opt;
  opt.path = dir / "imp.csv";
  opt.name = "my-set_1.0";
  opt.cache_dir = dir / "cache";
  auto d = ImportCsvDataset(opt);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->n_features, 2);
  EXPECT_EQ(d->n_classes, 3);
  EXPECT_THAT(d->class_names, ElementsAre("alpha", "beta", "gamma"));
  EXPECT_EQ(d->train_val.rows + d->test.rows, 200);
  EXPECT_EQ(d->test.rows, 40);
  for (const DataSplit* s : {&d->train_val, &d->test}) {
    for (int64_t r = 0; r < s->rows; ++r) {
      const float f0 = s->x[r * 2];
      const int64_t want = f0 < -0.5f ? 0 : (f0 < 0.5f ? 1 : 2);
      ASSERT_EQ(s->y[r], want) << "row " << r << " f0 " << f0;
    }
  }
  DatasetRequest req;
  req.name = "my-set_1.0";
  req.cache_dir = opt.cache_dir;
  auto again = LoadDataset(req);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sha256, d->sha256);
  EXPECT_EQ(again->test.x, d->test.x);
  const auto names = ListDatasets(opt.cache_dir);
  EXPECT_NE(std::find(names.begin(), names.end(), "my-set_1.0"), names.end());
}

TEST(Csv, ImportRejectsBadNamesAndTooFewRows) {
  ScratchDir dir;
  WriteFile(dir / "ok.csv", "a,label\n1,0\n2,1\n");
  CsvImportOptions opt;
  opt.path = dir / "ok.csv";
  opt.cache_dir = dir.str();
  for (const char* bad : {"", "Bad Name", "../x", "jsc", "jsc-synthetic", "-x"}) {
    opt.name = bad;
    auto d = ImportCsvDataset(opt);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  WriteFile(dir / "one.csv", "a,label\n1,0\n1,0\n");
  opt.path = dir / "one.csv";
  opt.name = "one";
  auto d = ImportCsvDataset(opt);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("at least 2 distinct rows"));
}

}  // namespace
}  // namespace qsweep
