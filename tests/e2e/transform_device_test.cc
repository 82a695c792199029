// A transform job runs on the device of the worker that leased it (its slot's
// device, else its --device), never on the device recorded in the checkpoint
// it transforms: a checkpoint whose record claims cuda:0 is transformed on a
// CPU worker on cpu, and the job's result, report and transformed checkpoint
// record "cpu". Links LibTorch, so it is one test case.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_util/fake_job_context.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/train_job_runner.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::FakeJobContext;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(TransformDeviceTest, TransformJobsRunOnTheWorkersDeviceNotTheCheckpoints) {
  const fs::path dir = fs::temp_directory_path() / ("qsweep_tdev_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  TrainJobRunnerOptions options;
  options.data_dir = (dir / "data").string();
  options.device = "cpu";
  TrainJobRunner runner(options);
  const json config = {{"model", "jsc-tiny"}, {"dataset", "jsc-synthetic"}, {"synthetic_rows", 400},
                       {"max_epochs", 1},     {"batch_size", 64},           {"device", "cpu"}};
  v1::Job train;
  train.set_id("sw-1-0");
  train.set_kind(v1::TRAIN);
  train.set_config_json(config.dump());
  FakeJobContext tctx((dir / "train").string(), "");
  JobOutcome trained = runner.Run(train, tctx);
  ASSERT_EQ(trained.kind, JobOutcome::Kind::kSucceeded) << trained.error;
  EXPECT_EQ(json::parse(trained.result_json)["device"], "cpu");
  std::string best;
  for (const auto& out : trained.outputs)
    if (out.name == "best") best = out.path;
  ASSERT_FALSE(best.empty());

  // The same weights, recorded as trained on cuda:0 (as a GPU worker's checkpoint is).
  const std::string gpu_ckpt = (dir / "gpu.ckpt").string();
  {
    CheckpointInfo info;
    auto net = LoadCheckpointNetwork(best, torch::kCPU, &info);
    ASSERT_TRUE(net.ok()) << net.status();
    json meta = info.meta;
    meta["device"] = "cuda:0";
    meta["config"]["device"] = "cuda:0";
    meta["config"]["accelerator"] = "gpu";
    ASSERT_TRUE(WriteCheckpoint(gpu_ckpt, **net, nullptr, meta).ok());
    auto reread = ReadCheckpointInfo(gpu_ckpt);
    ASSERT_TRUE(reread.ok()) << reread.status();
    ASSERT_EQ(reread->meta["config"]["device"], "cuda:0");
  }

  v1::Job transform;
  transform.set_id("sw-1-1");
  transform.set_kind(v1::TRANSFORM);
  transform.set_config_json(config.dump());
  transform.set_input_checkpoint_sha256("ckpt");
  transform.set_transform_toml(
      "[passes.quantize]\nby = \"type\"\n[passes.quantize.default.config]\nname = \"NA\"\n"
      "[passes.quantize.linear.config]\nname = \"integer\"\n"
      "data_in_width = 8\ndata_in_frac_width = 4\nweight_width = 8\nweight_frac_width = 4\n"
      "bias_width = 8\nbias_frac_width = 4\n");
  transform.set_transform_json(json{{"fine_tune_epochs", 1}}.dump());
  // The worker's --device (no per-slot device), and a slot's own device.
  for (const std::string slot_device : {"", "cpu"}) {
    SCOPED_TRACE("slot device '" + slot_device + "'");
    FakeJobContext ctx((dir / ("transform" + slot_device)).string(), slot_device);
    ctx.artifacts["ckpt"] = ReadAll(gpu_ckpt);
    JobOutcome o = runner.Run(transform, ctx);
    ASSERT_EQ(o.kind, JobOutcome::Kind::kSucceeded) << o.error;
    EXPECT_EQ(json::parse(o.result_json)["device"], "cpu");
    ASSERT_EQ(o.reports.size(), 1u);
    EXPECT_EQ(json::parse(o.reports[0].json)["device"], "cpu");
    EXPECT_THAT(o.reports[0].text, ::testing::HasSubstr(" on cpu\n"));
    std::string transformed;
    for (const auto& out : o.outputs)
      if (out.name == "transformed") transformed = out.path;
    ASSERT_FALSE(transformed.empty());
    auto info = ReadCheckpointInfo(transformed);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->meta["device"], "cpu");
    EXPECT_TRUE(o.final_metrics.count("test_acc_after_finetune"));
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qsweep
