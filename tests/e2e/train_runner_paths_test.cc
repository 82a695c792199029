// TrainJobRunner, the worker's side of "nothing in a request names a place":
// a job config naming a file or folder is refused (defence in depth: the
// server refuses it first), the model comes from the job (a zoo name or the
// inline definition), never from a file, and a transform job's report files
// stay inside its folder. Links LibTorch, so it is one test case.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_util/fake_job_context.h"
#include "worker/train_job_runner.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::FakeJobContext;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(TrainRunnerPathsTest, JobsNameNoPlaceAndBuildInlineModels) {
  const fs::path dir = fs::temp_directory_path() / ("qsweep_trp_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "a" / "b");
  TrainJobRunnerOptions options;
  options.data_dir = (dir / "data").string();
  TrainJobRunner runner(options);
  const json base = {
      {"dataset", "jsc-synthetic"}, {"synthetic_rows", 400}, {"max_epochs", 1}, {"batch_size", 64}};
  auto train_job = [&](const json& extra) {
    v1::Job job;
    job.set_id("sw-1-0");
    job.set_kind(v1::TRAIN);
    json config = base;
    for (const auto& [k, v] : extra.items()) config[k] = v;
    job.set_config_json(config.dump());
    return job;
  };

  // Keys that name a place: refused before anything is made there.
  for (const char* key : {"data_dir", "project_dir", "load_name"}) {
    const std::string place = (dir / "place").string();
    FakeJobContext ctx((dir / "a" / "b" / "work1").string());
    JobOutcome o = runner.Run(train_job({{"model", "jsc-tiny"}, {key, place}}), ctx);
    EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed) << key;
    EXPECT_THAT(o.error, HasSubstr(std::string("key '") + key + "' names a place")) << key;
    EXPECT_FALSE(fs::exists(place)) << key;
  }
  {  // A dataset name that is a path.
    FakeJobContext ctx((dir / "a" / "b" / "work2").string());
    JobOutcome o =
        runner.Run(train_job({{"model", "jsc-tiny"}, {"dataset", "../../escaped"}}), ctx);
    EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed);
    EXPECT_THAT(o.error, HasSubstr("key 'dataset'"));
  }
  {  // A model path is never opened: the same error as any non-zoo name.
    std::ofstream(dir / "model.toml") << "name = \"m\"\nhidden = [8]\n";
    FakeJobContext ctx((dir / "a" / "b" / "work3").string());
    JobOutcome o = runner.Run(train_job({{"model", (dir / "model.toml").string()}}), ctx);
    EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed);
    EXPECT_THAT(o.error, HasSubstr("sent inline"));
  }
  // An inline model trains; its checkpoint feeds a transform job.
  FakeJobContext ctx((dir / "a" / "b" / "work4").string());
  const json inline_model = {{"name", "wide"}, {"hidden", {8}}};
  JobOutcome trained = runner.Run(train_job({{"model", inline_model}}), ctx);
  ASSERT_EQ(trained.kind, JobOutcome::Kind::kSucceeded) << trained.error;
  std::string best;
  for (const auto& out : trained.outputs)
    if (out.name == "best") best = out.path;
  ASSERT_FALSE(best.empty());

  auto transform_job = [&](const std::string& toml) {
    v1::Job job = train_job({{"model", inline_model}});
    job.set_kind(v1::TRANSFORM);
    job.set_id("sw-1-1");
    job.set_input_checkpoint_sha256("ckpt");
    job.set_transform_toml(toml);
    return job;
  };
  {  // Report names from the job: plain names only, never outside the folder.
    FakeJobContext tctx((dir / "a" / "b" / "work5").string());
    tctx.artifacts["ckpt"] = ReadAll(best);
    for (const std::string& name : {std::string("../../../escaped.txt"), (dir / "abs.txt").string(),
                                    std::string("sub/x.txt")}) {
      JobOutcome o = runner.Run(
          transform_job("[passes.report_graph]\nfile_name = " + json(name).dump() + "\n"), tctx);
      EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed) << name;
      EXPECT_THAT(o.error, HasSubstr("passes.report_graph.file_name")) << name;
    }
    EXPECT_FALSE(fs::exists(dir / "a" / "escaped.txt"));
    EXPECT_FALSE(fs::exists(dir / "a" / "b" / "escaped.txt"));
    EXPECT_FALSE(fs::exists(dir / "abs.txt"));
    // A place key in the transform config.
    JobOutcome o =
        runner.Run(transform_job("data_dir = \"/tmp/x\"\n[passes.report_graph]\n"), tctx);
    EXPECT_EQ(o.kind, JobOutcome::Kind::kFailed);
    EXPECT_THAT(o.error, HasSubstr("key 'data_dir' names a place"));
    // A plain name works.
    JobOutcome ok =
        runner.Run(transform_job("[passes.report_graph]\nfile_name = \"graph.txt\"\n"), tctx);
    EXPECT_EQ(ok.kind, JobOutcome::Kind::kSucceeded) << ok.error;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qsweep
