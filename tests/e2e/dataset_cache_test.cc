// The worker's dataset cache: a file is fetched by hash into an empty data
// dir, verified, reused afterwards, and a corrupted transfer is rejected
// without leaving anything under the final name.
#include "worker/dataset_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/sha256.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DatasetCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsweep_dscache_" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  FetchBySha256 Serve(const std::string& bytes) {
    return [this, bytes](const std::string&) -> absl::StatusOr<std::string> {
      ++fetches_;
      return bytes;
    };
  }
  fs::path dir_;
  int fetches_ = 0;
  const std::string content_ = std::string("QSWPDSET") + std::string(100, '\x07');
  const std::string sha_ = Sha256Hex(content_);
};

TEST_F(DatasetCacheTest, FetchesIntoAnEmptyDirThenReuses) {
  auto path = EnsureCachedDataset(dir_.string(), sha_, Serve(content_));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, CachedDatasetPath(dir_.string(), sha_));
  std::ifstream in(*path, std::ios::binary);
  std::ostringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), content_);
  EXPECT_EQ(fetches_, 1);

  ASSERT_TRUE(EnsureCachedDataset(dir_.string(), sha_, Serve(content_)).ok());
  EXPECT_EQ(fetches_, 1);  // served from the cache

  std::ofstream(*path, std::ios::binary | std::ios::trunc) << "damaged";
  ASSERT_TRUE(EnsureCachedDataset(dir_.string(), sha_, Serve(content_)).ok());
  EXPECT_EQ(fetches_, 2);  // a damaged cache file is fetched again
}

TEST_F(DatasetCacheTest, CorruptedTransferIsRejected) {
  std::string corrupted = content_;
  corrupted[20] ^= 1;
  auto path = EnsureCachedDataset(dir_.string(), sha_, Serve(corrupted));
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(path.status().message(), HasSubstr(sha_));
  EXPECT_THAT(path.status().message(), HasSubstr(Sha256Hex(corrupted)));
  EXPECT_FALSE(fs::exists(CachedDatasetPath(dir_.string(), sha_)));
  // No temporary file is left behind either.
  const fs::path folder = fs::path(CachedDatasetPath(dir_.string(), sha_)).parent_path();
  EXPECT_TRUE(!fs::exists(folder) || fs::is_empty(folder));
}

TEST_F(DatasetCacheTest, BadHashesAndFetchErrorsAreStatuses) {
  for (const std::string& bad :
       std::vector<std::string>{"", "abc", "../../etc/passwd", std::string(64, 'G')}) {
    auto path = EnsureCachedDataset(dir_.string(), bad, Serve(content_));
    ASSERT_FALSE(path.ok()) << bad;
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(path.status().message(), HasSubstr("dataset_sha256"));
  }
  EXPECT_EQ(fetches_, 0);
  auto missing = EnsureCachedDataset(dir_.string(), sha_, [](const std::string&) {
    return absl::StatusOr<std::string>(absl::NotFoundError("no artifact"));
  });
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(sha_));
}

}  // namespace
}  // namespace qsweep
