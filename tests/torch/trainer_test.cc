// TrainModel / EvaluateCheckpoint through the torch-free interface.
#include "worker/core/torch/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "tests/torch/test_util.h"
#include "worker/core/torch/checkpoint.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using testing_util::BlobDataset;
using testing_util::TempDir;

class Recorder : public TrainCallback {
 public:
  void OnMetric(const MetricPoint& m) override { metrics.push_back(m); }
  void OnProgress(const TrainProgress& p) override {
    ++progress_calls;
    last = p;
  }
  bool ShouldStop() override { return stop_after >= 0 && progress_calls >= stop_after; }

  std::vector<double> Values(const std::string& name) const {
    std::vector<double> v;
    for (const auto& m : metrics)
      if (m.name == name) v.push_back(m.value);
    return v;
  }

  std::vector<MetricPoint> metrics;
  TrainProgress last;
  int progress_calls = 0;
  int stop_after = -1;
};

TrainConfig BaseConfig() {
  TrainConfig c;
  c.model = "jsc-toy";
  c.dataset = "blobs-test";
  c.batch_size = 128;
  c.learning_rate = 1e-2;
  c.max_epochs = 6;
  c.log_every_n_steps = 10;
  c.threads = 1;
  return c;
}

const Dataset& Blobs() {
  static const Dataset d = BlobDataset(4000, 1000);
  return d;
}

// Trains jsc-toy to high accuracy, writes best/last checkpoints that reload
// to the same metrics, and logs MASE's metric names.
TEST(TrainerTest, LearnsWritesCheckpointsAndReloads) {
  TempDir dir("train");
  Recorder rec;
  TrainOptions opt;
  opt.checkpoint_dir = dir.File("training_ckpts");
  opt.callback = &rec;
  opt.provenance = {{"job", "t1"}};
  TrainConfig config = BaseConfig();
  auto r = TrainModel(config, *ZooModel("jsc-toy"), Blobs(), opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, "succeeded") << r->message;
  EXPECT_EQ(r->epochs_completed, 6);
  // 4000 rows / 128 = 31.25 -> 32 batches per epoch (no drop_last).
  EXPECT_EQ(r->global_steps, 6 * 32);
  EXPECT_GT(r->final_metrics.at("test_acc_epoch"), 0.95);
  EXPECT_GT(r->final_metrics.at("val_acc_epoch"), 0.95);
  EXPECT_GT(r->samples_per_second, 0);

  EXPECT_EQ(rec.Values("val_loss_epoch").size(), 6u);
  EXPECT_EQ(rec.Values("test_acc_epoch").size(), 6u);
  EXPECT_EQ(rec.Values("lr").size(), 6u);
  EXPECT_EQ(rec.Values("epoch_seconds").size(), 6u);
  EXPECT_EQ(rec.Values("samples_per_second").size(), 6u);
  EXPECT_EQ(rec.Values("train_loss_step").size(),
            192u / 10);  // steps 10, 20, ..., 190
  EXPECT_EQ(rec.Values("train_acc_step").size(), 192u / 10);
  for (const auto& m : rec.metrics)
    if (m.name == "train_loss_step") {
      EXPECT_EQ(m.step % 10, 0);
    }
  EXPECT_EQ(rec.progress_calls, 192);
  EXPECT_EQ(rec.last.global_step, 192);
  EXPECT_EQ(rec.last.batches_per_epoch, 32);

  // Best = lowest val_loss_epoch.
  auto val = rec.Values("val_loss_epoch");
  const size_t best_epoch = std::min_element(val.begin(), val.end()) - val.begin();
  EXPECT_EQ(r->final_metrics.at("best_epoch"), static_cast<double>(best_epoch));
  EXPECT_EQ(r->final_metrics.at("best_val_loss_epoch"), val[best_epoch]);
  ASSERT_TRUE(std::filesystem::exists(r->best_checkpoint));
  ASSERT_TRUE(std::filesystem::exists(r->last_checkpoint));
  EXPECT_EQ(std::filesystem::path(r->best_checkpoint).filename(), "best.ckpt");
  EXPECT_EQ(std::filesystem::path(r->last_checkpoint).filename(), "last.ckpt");

  auto info = ReadCheckpointInfo(r->best_checkpoint);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->spec.name, "jsc-toy");
  EXPECT_EQ(info->meta["epoch"], best_epoch);
  EXPECT_EQ(info->meta["kind"], "best");
  EXPECT_EQ(info->meta["dataset"], "blobs-test");
  EXPECT_EQ(info->meta["dataset_sha256"], "0123456789abcdef");
  EXPECT_EQ(info->meta["synthetic"], true);
  EXPECT_EQ(info->meta["seed"], 0);
  EXPECT_EQ(info->meta["config"]["batch_size"], 128);
  EXPECT_EQ(info->meta["provenance"]["job"], "t1");
  EXPECT_TRUE(info->meta.contains("quantization"));
  EXPECT_TRUE(info->meta["libtorch_version"].is_string());
  EXPECT_TRUE(info->meta["qsweep_version"].is_string());
  EXPECT_DOUBLE_EQ(info->meta["metrics"]["val_loss_epoch"].get<double>(), val[best_epoch]);

  // Reloaded checkpoints reproduce the logged metrics exactly.
  auto best_eval = EvaluateCheckpoint(r->best_checkpoint, Blobs(), "train_val", 128, "");
  ASSERT_TRUE(best_eval.ok()) << best_eval.status();
  EXPECT_DOUBLE_EQ(best_eval->loss, val[best_epoch]);
  EXPECT_EQ(best_eval->rows, 4000);
  auto last_eval = EvaluateCheckpoint(r->last_checkpoint, Blobs(), "test", 128, "cpu");
  ASSERT_TRUE(last_eval.ok()) << last_eval.status();
  EXPECT_DOUBLE_EQ(last_eval->loss, r->final_metrics.at("test_loss_epoch"));
  EXPECT_DOUBLE_EQ(last_eval->accuracy, r->final_metrics.at("test_acc_epoch"));
  auto last_info = ReadCheckpointInfo(r->last_checkpoint);
  EXPECT_EQ(last_info->meta["epoch"], 5);
  EXPECT_EQ(last_info->meta["global_step"], 192);

  EXPECT_EQ(EvaluateCheckpoint(r->best_checkpoint, Blobs(), "holdout", 128, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateCheckpoint(dir.File("nope.ckpt"), Blobs(), "test", 128, "").status().code(),
            absl::StatusCode::kNotFound);

  Dataset wrong = BlobDataset(20, 20);
  wrong.n_classes = 6;
  EXPECT_EQ(EvaluateCheckpoint(r->best_checkpoint, wrong, "test", 128, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateCheckpoint(r->best_checkpoint, Blobs(), "test", 0, "").status().code(),
            absl::StatusCode::kInvalidArgument);

  // load_name: start from the trained weights. With lr 0 nothing is learnt,
  // so high accuracy can only come from the loaded weights.
  for (const std::string& from : {r->best_checkpoint, dir.File("exported.pt")}) {
    SCOPED_TRACE(from);
    if (from == dir.File("exported.pt")) {
      ASSERT_TRUE(ExportStateDict(r->best_checkpoint, from).ok());
    }
    TrainConfig resume = BaseConfig();
    resume.load_name = from;
    resume.learning_rate = 0;
    resume.max_epochs = 1;
    resume.debug = true;
    auto rr = TrainModel(resume, *ZooModel("jsc-toy"), Blobs(), {});
    ASSERT_TRUE(rr.ok()) << rr.status();
    EXPECT_GT(rr->final_metrics.at("val_acc_epoch"), 0.95);
  }
  TrainConfig fresh = BaseConfig();
  fresh.learning_rate = 0;
  fresh.max_epochs = 1;
  fresh.debug = true;
  EXPECT_LT(TrainModel(fresh, *ZooModel("jsc-toy"), Blobs(), {})->final_metrics.at("val_acc_epoch"),
            0.6);
  fresh.load_name = dir.File("missing.ckpt");
  auto missing = TrainModel(fresh, *ZooModel("jsc-toy"), Blobs(), {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.ckpt"));
  fresh.load_name = r->best_checkpoint;  // jsc-toy weights into jsc-s
  auto wrong_model = TrainModel(fresh, *ZooModel("jsc-s"), Blobs(), {});
  EXPECT_EQ(wrong_model.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(wrong_model.status().message()), HasSubstr("load_name"));

  // Export works on a trained checkpoint too.
  EXPECT_TRUE(ExportStateDict(r->best_checkpoint, dir.File("model.pt")).ok());
  EXPECT_GT(std::filesystem::file_size(dir.File("model.pt")), 1000u);
}

// Same seed, data and config: identical metrics. Another seed: different.
TEST(TrainerTest, DeterministicOnCpu) {
  auto run = [](int64_t seed, const std::string& optimizer) {
    Recorder rec;
    TrainOptions opt;
    opt.callback = &rec;
    TrainConfig c = BaseConfig();
    c.max_epochs = 2;
    c.seed = seed;
    c.training_optimizer = optimizer;
    c.log_every_n_steps = 1;
    auto r = TrainModel(c, *ZooModel("jsc-trt"), Blobs(), opt);  // has Dropout
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::pair<std::string, double>> out;
    for (const auto& m : rec.metrics)
      if (m.name != "epoch_seconds" && m.name != "samples_per_second")
        out.emplace_back(m.name, m.value);
    return out;
  };
  for (const std::string optimizer : {"adam", "adamw", "sgd"}) {
    auto a = run(3, optimizer), b = run(3, optimizer), c = run(4, optimizer);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(a, b) << optimizer;
    EXPECT_NE(a, c) << optimizer;
  }
}

// The lr metric follows PyTorch's CosineAnnealingLR(T_max=max_epochs,
// eta_min=1e-6).
TEST(TrainerTest, CosineScheduleMatchesPyTorch) {
  TempDir dir("cosine");
  Recorder rec;
  TrainOptions opt;
  opt.callback = &rec;
  TrainConfig c = BaseConfig();
  c.max_epochs = 7;
  c.learning_rate = 1e-3;
  c.debug = true;  // 5 batches per split
  auto r = TrainModel(c, *ZooModel("jsc-tiny"), Blobs(), opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->global_steps, 7 * 5);
  const std::string out = dir.File("lr.json");
  ASSERT_EQ(
      testing_util::RunCommand(std::string(testing_util::kPython) + " " +
                                   testing_util::HelperScript() + " cosine --lr 1e-3 --epochs 7",
                               out),
      0);
  nlohmann::json py = nlohmann::json::parse(testing_util::ReadFile(out));
  auto lrs = rec.Values("lr");
  ASSERT_EQ(lrs.size(), py.size());
  for (size_t e = 0; e < lrs.size(); ++e) {
    EXPECT_NEAR(lrs[e], py[e].get<double>(), 1e-12 * py[0].get<double>()) << "epoch " << e;
  }
  EXPECT_DOUBLE_EQ(lrs[0], 1e-3);
  EXPECT_LT(lrs[6], 1e-4);
}

// A NaN loss ends the run with status "diverged" and the exact message.
TEST(TrainerTest, DivergenceIsAResultNotACrash) {
  Dataset poisoned = BlobDataset(4000, 1000);
  for (int64_t f = 0; f < 16; ++f) poisoned.train_val.x[f] = std::nanf("");  // row 0
  TrainConfig c = BaseConfig();
  c.max_epochs = 2;
  auto r = TrainModel(c, *ZooModel("jsc-toy"), poisoned, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, "diverged");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r->message, m, std::regex("diverged: loss is NaN at step (\\d+)")))
      << r->message;
  const int step = std::stoi(m[1]);
  EXPECT_GE(step, 1);
  EXPECT_LE(step, 32);  // row 0 is in some batch of the first epoch
  EXPECT_EQ(r->global_steps, step - 1);
  EXPECT_EQ(r->epochs_completed, 0);

  // lr 10: SGD on a model without BatchNorm blows up to an inf/NaN loss. (The
  // BN models' losses stay finite at lr 10: their ReLUs die and accuracy
  // collapses to chance, which is a succeeded run with bad metrics.)
  auto no_bn = ModelFromToml(
      "layers = [{type = \"linear\", width = 64}, {type "
      "= \"relu\"}, {type = \"linear\"}]\n",
      "no-bn");
  ASSERT_TRUE(no_bn.ok()) << no_bn.status();
  c.learning_rate = 10;
  c.training_optimizer = "sgd";
  c.max_epochs = 3;
  auto big = TrainModel(c, *no_bn, Blobs(), {});
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->status, "diverged");
  ASSERT_TRUE(
      std::regex_match(big->message, m, std::regex("diverged: loss is (NaN|inf) at step (\\d+)")))
      << big->message;
  EXPECT_GT(std::stoi(m[2]), 1);
  EXPECT_EQ(big->global_steps, std::stoi(m[2]) - 1);
  auto toy = TrainModel(c, *ZooModel("jsc-toy"), Blobs(), {});
  ASSERT_TRUE(toy.ok()) << toy.status();
  EXPECT_EQ(toy->status, "succeeded");
}

TEST(TrainerTest, CancelAccumulateAndMaxSteps) {
  Recorder rec;
  rec.stop_after = 3;
  TrainOptions opt;
  opt.callback = &rec;
  auto r = TrainModel(BaseConfig(), *ZooModel("jsc-tiny"), Blobs(), opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, "cancelled");
  EXPECT_EQ(r->global_steps, 3);

  TrainConfig c = BaseConfig();
  c.accumulate_grad_batches = 3;
  c.max_steps = 15;  // 32 batches/epoch -> 11 steps per epoch (the last one short)
  Recorder rec2;
  opt.callback = &rec2;
  auto r2 = TrainModel(c, *ZooModel("jsc-tiny"), Blobs(), opt);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->status, "succeeded");
  EXPECT_EQ(r2->global_steps, 15);
  EXPECT_EQ(r2->epochs_completed, 2);  // the partial second epoch is evaluated
  EXPECT_EQ(rec2.Values("val_loss_epoch").size(), 2u);
}

// A final batch of one row is skipped in train mode (BatchNorm cannot
// normalise it) instead of crashing.
TEST(TrainerTest, FinalBatchOfOneRowIsSkipped) {
  Dataset d = BlobDataset(129, 10);
  TrainConfig c = BaseConfig();
  c.max_epochs = 2;
  auto r = TrainModel(c, *ZooModel("jsc-toy"), d, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, "succeeded");
  EXPECT_EQ(r->global_steps, 2);
}

TEST(TrainerTest, BadInputGivesClearErrors) {
  auto expect_error = [](TrainConfig c, const Dataset& d, absl::StatusCode code,
                         const std::string& text) {
    auto r = TrainModel(c, *ZooModel("jsc-toy"), d, {});
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(text));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("jsc-toy"));
  };
  TrainConfig c = BaseConfig();
  c.training_optimizer = "rmsprop";
  expect_error(c, Blobs(), absl::StatusCode::kInvalidArgument, "adam, adamw, sgd");
  c = BaseConfig();
  c.batch_size = 0;
  expect_error(c, Blobs(), absl::StatusCode::kInvalidArgument, "batch_size");
  c = BaseConfig();
  c.max_epochs = -1;
  expect_error(c, Blobs(), absl::StatusCode::kInvalidArgument, "max_epochs");
  c = BaseConfig();
  c.learning_rate = -1;
  expect_error(c, Blobs(), absl::StatusCode::kInvalidArgument, "learning_rate");
  c = BaseConfig();
  c.device = "tpu";
  expect_error(c, Blobs(), absl::StatusCode::kInvalidArgument, "cpu, cuda");
  c = BaseConfig();
  c.trainer_precision = "16-mixed";
  expect_error(c, Blobs(), absl::StatusCode::kUnimplemented, "trainer_precision");

  Dataset wrong_width = BlobDataset(100, 10);
  wrong_width.n_features = 15;
  expect_error(BaseConfig(), wrong_width, absl::StatusCode::kInvalidArgument, "features");
  Dataset bad_label = BlobDataset(100, 10);
  bad_label.train_val.y[7] = 5;
  expect_error(BaseConfig(), bad_label, absl::StatusCode::kInvalidArgument, "row 7");
  Dataset short_x = BlobDataset(100, 10);
  short_x.test.x.pop_back();
  expect_error(BaseConfig(), short_x, absl::StatusCode::kInvalidArgument, "test");

  // An unwritable checkpoint folder.
  TempDir dir("unwritable");
  std::ofstream(dir.File("file")) << "x";
  TrainOptions opt;
  opt.checkpoint_dir = dir.File("file") + "/sub";
  auto r = TrainModel(BaseConfig(), *ZooModel("jsc-toy"), Blobs(), opt);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("checkpoint folder"));
}

}  // namespace
}  // namespace qsweep

namespace qsweep {
namespace {

// Manual benchmark (not run by ctest): training throughput on 200k rows,
// one thread. Run with --gtest_also_run_disabled_tests
// --gtest_filter='*Throughput*'.
TEST(TrainerBenchmark, DISABLED_Throughput) {
  const Dataset d = BlobDataset(200000, 1000);
  auto ten_x = ModelFromToml("hidden = [64, 40, 10]\n", "mlp-10x");
  ASSERT_TRUE(ten_x.ok()) << ten_x.status();
  for (const ModelSpec& spec : {*ZooModel("jsc-toy"), *ten_x}) {
    for (int64_t bs : {64, 256, 1024}) {
      TrainConfig c = BaseConfig();
      c.batch_size = bs;
      c.max_epochs = 3;
      c.learning_rate = 1e-3;
      c.log_every_n_steps = 50;
      Recorder rec;
      TrainOptions opt;
      opt.callback = &rec;
      auto r = TrainModel(c, spec, d, opt);
      ASSERT_TRUE(r.ok()) << r.status();
      auto sps = rec.Values("samples_per_second");
      std::sort(sps.begin(), sps.end());
      std::printf("%-10s bs %5ld: median %.0f samples/s over 3 epochs (wall %.2f s)\n",
                  spec.name.c_str(), static_cast<long>(bs), sps[1], r->wall_seconds);
    }
  }
}

}  // namespace
}  // namespace qsweep
