// TrainJobRunner with a served dataset: a worker whose data dir is EMPTY runs
// a TRAIN job by fetching the prepared file by hash, and a corrupted transfer
// fails the job with an error naming the job and the hash (no crash, nothing
// cached). Links LibTorch, so it is one test case (one process).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/sha256.h"
#include "tests/test_util/fake_job_context.h"
#include "worker/core/data/dataset.h"
#include "worker/dataset_cache.h"
#include "worker/train_job_runner.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using testing::FakeJobContext;
using ::testing::HasSubstr;

TEST(TrainRunnerDatasetTest, FetchesIntoAnEmptyDataDirAndRejectsCorruption) {
  const fs::path dir = fs::temp_directory_path() / ("qsweep_trds_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "work");
  // What the server would serve: the prepared file, made in its own folder.
  DatasetRequest request;
  request.name = "jsc-synthetic";
  request.cache_dir = (dir / "server").string();
  request.synthetic_rows = 400;
  ASSERT_TRUE(LoadDataset(request).ok());
  std::ifstream in(PreparedPath(request), std::ios::binary);
  std::ostringstream file;
  file << in.rdbuf();
  const std::string bytes = file.str();
  const std::string sha = Sha256Hex(bytes);

  v1::Job job;
  job.set_id("sw-1-0");
  job.set_kind(v1::TRAIN);
  job.set_config_json(nlohmann::json{
      {"model", "jsc-tiny"},
      {"dataset", "jsc-synthetic"},
      {"synthetic_rows", 400},
      {"max_epochs", 1},
      {"batch_size", 64}}.dump());
  job.set_dataset_sha256(sha);

  {  // A corrupted transfer: the job fails, naming itself and the hash.
    TrainJobRunnerOptions options;
    options.data_dir = (dir / "corrupt-worker").string();
    TrainJobRunner runner(options);
    std::string corrupted = bytes;
    corrupted[corrupted.size() / 2] ^= 0x5a;
    FakeJobContext ctx((dir / "work").string());
    ctx.every_artifact = corrupted;
    JobOutcome o = runner.Run(job, ctx);
    EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed);
    EXPECT_THAT(o.error, HasSubstr("job sw-1-0"));
    EXPECT_THAT(o.error, HasSubstr(sha));
    EXPECT_FALSE(fs::exists(CachedDatasetPath(options.data_dir, sha)));
  }
  {  // An empty data dir: fetched once, verified, cached, trained on.
    TrainJobRunnerOptions options;
    options.data_dir = (dir / "worker").string();
    TrainJobRunner runner(options);
    FakeJobContext ctx((dir / "work").string());
    ctx.every_artifact = bytes;
    JobOutcome o = runner.Run(job, ctx);
    ASSERT_EQ(o.kind, JobOutcome::Kind::kSucceeded) << o.error;
    EXPECT_EQ(ctx.fetches, 1);
    const auto result = nlohmann::json::parse(o.result_json);
    EXPECT_THAT(result["dataset"].get<std::string>(), HasSubstr("400 rows"));
    std::ifstream cached(CachedDatasetPath(options.data_dir, sha), std::ios::binary);
    std::ostringstream got;
    got << cached.rdbuf();
    EXPECT_TRUE(got.str() == bytes);
    // The worker did not prepare the dataset itself.
    EXPECT_FALSE(fs::exists(dir / "worker" / "jsc-synthetic-r400-s0.qsds"));
  }
  fs::remove_all(dir);
}

// A job asking for more intra-op threads than the machine has cores runs
// with one per core (the worker's side of the `threads` limit).
TEST(TrainRunnerDatasetTest, ThreadsAreCappedAtTheWorkersCores) {
  const fs::path dir = fs::temp_directory_path() / ("qsweep_trth_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "work");
  v1::Job job;
  job.set_id("sw-2-0");
  job.set_kind(v1::TRAIN);
  job.set_config_json(nlohmann::json{
      {"model", "jsc-tiny"},
      {"dataset", "jsc-synthetic"},
      {"synthetic_rows", 400},
      {"max_epochs", 1},
      {"batch_size", 64},
      {"threads", 100000}}.dump());
  TrainJobRunnerOptions options;
  options.data_dir = (dir / "worker").string();
  TrainJobRunner runner(options);
  FakeJobContext ctx((dir / "work").string());
  ctx.every_artifact = "";
  JobOutcome o = runner.Run(job, ctx);
  ASSERT_EQ(o.kind, JobOutcome::Kind::kSucceeded) << o.error;
  const auto result = nlohmann::json::parse(o.result_json);
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  EXPECT_EQ(result.value("threads", int64_t{0}), cores) << o.result_json;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qsweep
