// The prepared-dataset file: round trip, SHA-256, atomic writes, and
// DATA_LOSS (or a rebuild) for corrupt and truncated files.
#include "worker/core/data/prepared_file.h"

#include <filesystem>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace qsweep {
namespace {

using ::qsweep::testing::ReadFile;
using ::qsweep::testing::ScratchDir;
using ::qsweep::testing::WriteFile;
using ::testing::HasSubstr;

Dataset Small() {
  Dataset d;
  d.name = "tiny";
  d.n_features = 3;
  d.n_classes = 2;
  d.feature_names = {"a", "b", "c"};
  d.class_names = {"no", "yes"};
  d.train_val.rows = 4;
  d.train_val.x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5f};
  d.train_val.y = {0, 1, 1, 0};
  d.test.rows = 1;
  d.test.x = {-1, -2, -3};
  d.test.y = {1};
  d.scaler_mean = {0.5f, 1, 2};
  d.scaler_std = {1, 2, 3};
  d.description = "hand-made";
  d.source = "test";
  return d;
}

TEST(PreparedFile, RoundTripAndSha256OfContent) {
  ScratchDir dir;
  Dataset d = Small();
  const std::string path = dir / "sub/tiny.qsds";
  ASSERT_TRUE(WritePreparedFile(path, d).ok());
  const std::string bytes = ReadFile(path);
  EXPECT_EQ(bytes.substr(0, 8), "QSWPDSET");
  EXPECT_EQ(d.sha256, Sha256Hex(std::string_view(bytes).substr(80)));
  EXPECT_EQ(bytes.substr(16, 64), d.sha256);
  auto back = ReadPreparedFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sha256, d.sha256);
  EXPECT_EQ(back->name, "tiny");
  EXPECT_EQ(back->train_val.x, d.train_val.x);
  EXPECT_EQ(back->train_val.y, d.train_val.y);
  EXPECT_EQ(back->test.x, d.test.x);
  EXPECT_EQ(back->test.y, d.test.y);
  EXPECT_EQ(back->scaler_std, d.scaler_std);
  EXPECT_EQ(back->class_names, d.class_names);
  EXPECT_EQ(back->description, "hand-made");
  // Only the final file remains: the temporary was renamed.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "sub")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(PreparedFile, CorruptionIsDataLossNamingTheFile) {
  ScratchDir dir;
  Dataset d = Small();
  const std::string path = dir / "tiny.qsds";
  ASSERT_TRUE(WritePreparedFile(path, d).ok());
  const std::string good = ReadFile(path);
  struct Case {
    std::string name, bytes, says;
  };
  std::string flipped = good;
  flipped[flipped.size() - 20] ^= 0x40;  // inside the arrays
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  std::string bad_meta = good;
  bad_meta[90] ^= 0x7f;  // inside the metadata
  for (const Case& c : {Case{"flip", flipped, "SHA-256 mismatch"},
                        Case{"cut", good.substr(0, good.size() - 5), "truncated"},
                        Case{"header", good.substr(0, 40), "truncated header"},
                        Case{"empty", "", "truncated header"},
                        Case{"magic", bad_magic, "bad magic"}, Case{"meta", bad_meta, "corrupt"}}) {
    WriteFile(path, c.bytes);
    auto r = ReadPreparedFile(path);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << c.name << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(path)) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr(c.says)) << c.name;
  }
  EXPECT_EQ(ReadPreparedFile(dir / "none.qsds").status().code(), absl::StatusCode::kNotFound);
}

TEST(PreparedFile, CorruptImportedDatasetIsDataLoss) {
  ScratchDir dir;
  Dataset d = Small();
  const std::string path = dir / "tiny.qsds";
  ASSERT_TRUE(WritePreparedFile(path, d).ok());
  std::string bytes = ReadFile(path);
  WriteFile(path, bytes.substr(0, bytes.size() / 2));
  DatasetRequest req;
  req.name = "tiny";
  req.cache_dir = dir.str();
  auto r = LoadDataset(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr(path));
}

TEST(PreparedFile, CorruptSyntheticCacheIsRebuilt) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir.str();
  req.synthetic_rows = 2000;
  auto first = LoadDataset(req);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string path = PreparedPath(req);
  std::string bytes = ReadFile(path);
  bytes[bytes.size() / 2] ^= 1;
  WriteFile(path, bytes);
  ASSERT_EQ(ReadPreparedFile(path).status().code(), absl::StatusCode::kDataLoss);
  auto again = LoadDataset(req);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sha256, first->sha256);
  EXPECT_TRUE(ReadPreparedFile(path).ok());
}

TEST(PreparedFile, RejectsInconsistentDataset) {
  ScratchDir dir;
  Dataset d = Small();
  d.train_val.y.pop_back();
  EXPECT_EQ(WritePreparedFile(dir / "x.qsds", d).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.qsds"));
}

}  // namespace
}  // namespace qsweep
