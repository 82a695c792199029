// End to end on LibTorch: train a small jsc-tiny checkpoint on synthetic data,
// run Lab 2's passes with `RunTransform`, check the reports and files, and
// cross-check the transformed checkpoint's outputs with an independent numpy
// computation of MASE's integer formula (Debian's /usr/bin/python3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "tests/common/subprocess.h"
#include "tests/passes/quantize_examples.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/optimizer.h"
#include "worker/core/torch/packed_trainer.h"
#include "worker/core/torch/pass_runner.h"
#include "worker/core/torch/quantized_modules.h"
#include "worker/core/torch/trainer_internal.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::string kLab2Config = std::string(R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
project = "lab2-tiny"
[passes.profile_statistics]
by = "type"
target_weight_nodes = ["linear"]
target_activation_nodes = ["relu"]
num_samples = 32
[passes.profile_statistics.weight_statistics.variance_precise]
device = "cpu"
dims = "all"
[passes.profile_statistics.activation_statistics.range_quantile]
device = "cpu"
dims = "all"
quantile = 0.97
)") + testing::kQuantizeLinearByType +
                                R"(
[passes.report_node_meta_param]
which = ["software"]
[passes.report_graph]
[transform]
style = "graph"
)";

// jsc-tiny on `rows` synthetic rows (data under `tmp`), batch 64, lr 1e-2, cpu.
TrainConfig TinyConfig(const fs::path& tmp, int64_t rows, int64_t epochs) {
  TrainConfig cfg;
  cfg.model = "jsc-tiny";
  cfg.dataset = "jsc-synthetic";
  cfg.synthetic_rows = rows;
  cfg.data_dir = (tmp / "data").string();
  cfg.max_epochs = epochs;
  cfg.batch_size = 64;
  cfg.learning_rate = 1e-2;
  cfg.device = "cpu";
  return cfg;
}

// Loads cfg's dataset into `data` and trains cfg into tmp/ckpt; `best` is its
// best checkpoint.
void TrainTiny(const TrainConfig& cfg, const fs::path& tmp, Dataset& data, std::string& best) {
  DatasetRequest req;
  req.name = cfg.dataset;
  req.cache_dir = cfg.data_dir;
  req.synthetic_rows = cfg.synthetic_rows;
  auto loaded = LoadDataset(req);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  data = std::move(*loaded);
  TrainOptions topt;
  topt.checkpoint_dir = (tmp / "ckpt").string();
  auto trained = TrainModel(cfg, *ZooModel(cfg.model), data, topt);
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_FALSE(trained->best_checkpoint.empty());
  best = trained->best_checkpoint;
}

// Report outputs named by the config stay inside the output folder: a local
// run may use a relative path inside it, the service (plain_report_names)
// only plain names; nothing ever lands outside.
TEST(Transform, ReportNamesStayInsideTheOutputFolder) {
  fs::path tmp = fs::temp_directory_path() / ("qsweep_report_names_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp / "a" / "b");
  Dataset data;
  std::string best;
  ASSERT_NO_FATAL_FAILURE(TrainTiny(TinyConfig(tmp, 1000, 1), tmp, data, best));

  auto run = [&](const std::string& name, bool plain) {
    const fs::path config = tmp / "names.toml";
    std::ofstream(config) << "[passes.report_graph]\nfile_name = " << nlohmann::json(name).dump()
                          << "\n";
    TransformOptions o;
    o.config_path = config.string();
    o.load = best;
    o.evaluate = false;
    o.output_dir = (tmp / "a" / "b" / "out").string();
    o.plain_report_names = plain;
    fs::remove_all(o.output_dir);
    return RunTransform(o);
  };
  // A local run: a relative path inside the output folder is fine.
  auto inside = run("reports/graph.txt", false);
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_TRUE(fs::exists(tmp / "a" / "b" / "out" / "reports" / "graph.txt"));
  // Outside it: refused, nothing written.
  const std::string absolute = (tmp / "abs.txt").string();
  for (const std::string& name : {std::string("../../escaped.txt"), absolute,
                                  std::string("reports/../../x.txt"), std::string("")}) {
    auto r = run(name, false);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(std::string(r.status().message()).find("passes.report_graph.file_name"),
              std::string::npos)
        << r.status();
  }
  EXPECT_FALSE(fs::exists(tmp / "a" / "escaped.txt"));
  EXPECT_FALSE(fs::exists(absolute));
  EXPECT_FALSE(fs::exists(tmp / "a" / "b" / "x.txt"));
  // The service's jobs: plain names only.
  auto plain = run("reports/graph.txt", true);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(std::string(plain.status().message()).find("contains '/'"), std::string::npos)
      << plain.status();
  EXPECT_TRUE(run("graph.txt", true).ok());
  fs::remove_all(tmp);
}

TEST(Transform, Lab2OnTrainedJscTiny) {
  fs::path tmp =
      fs::temp_directory_path() / ("qsweep_transform_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  const TrainConfig cfg = TinyConfig(tmp, 6000, 2);
  Dataset loaded;
  std::string best;
  ASSERT_NO_FATAL_FAILURE(TrainTiny(cfg, tmp, loaded, best));
  const Dataset* data = &loaded;

  fs::path config = tmp / "lab2.toml";
  std::ofstream(config) << kLab2Config;
  TransformOptions o;
  o.config_path = config.string();
  o.load = best;
  o.overrides = {{"batch_size", 8}, {"project_dir", (tmp / "out").string()}};
  o.fine_tune_epochs = 1;
  struct Recorder : TrainCallback {
    std::vector<std::string> names;
    void OnMetric(const MetricPoint& m) override { names.push_back(m.name); }
  } recorder;
  o.callback = &recorder;
  auto r = RunTransform(o);
  ASSERT_TRUE(r.ok()) << r.status();
  if (std::getenv("QSWEEP_TEST_VERBOSE")) std::cout << r->text;

  // MASE.md §5.5's histogram, printed in the run's text.
  EXPECT_NE(r->text.find("| Original type   | OP           |   Total |   Changed |   Unchanged |\n"
                         "|-----------------+--------------+---------+-----------+-------------|\n"
                         "| BatchNorm1d     | batch_norm1d |       1 |         0 |           1 |\n"
                         "| Linear          | linear       |       1 |         1 |           0 |\n"
                         "| ReLU            | relu         |       2 |         0 |           2 |\n"
                         "| output          | output       |       1 |         0 |           1 |\n"
                         "| x               | placeholder  |       1 |         0 |           1 |"),
            std::string::npos)
      << r->text;
  fs::path dir = r->output_dir;
  EXPECT_EQ(dir, fs::absolute(tmp / "out" / "lab2-tiny" / "software" / "transform"));
  for (const char* f : {"quantize/quantize_table.csv", "quantize/quantize_histogram.csv",
                        "report_graph.txt", "report_node_meta_param.txt", "profile_statistics.json",
                        "flops_bitops.json", "verify_quantization.json", "transform_report.json",
                        "transformed_ckpt/node_meta_param.toml", "transformed_ckpt/state_dict.pt"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;

  auto stats = nlohmann::json::parse(Read(dir / "profile_statistics.json"));
  EXPECT_EQ(stats["act_batches"], 4);
  EXPECT_EQ(stats["stats"]["seq_blocks_1"]["data_in_0"]["range_quantile"]["count"], 512);
  EXPECT_EQ(stats["stats"]["seq_blocks_3"]["data_in_0"]["range_quantile"]["count"], 160);
  EXPECT_EQ(stats["stats"]["seq_blocks_2"]["weight"]["variance_precise"]["count"], 80);
  EXPECT_EQ(stats["stats"]["seq_blocks_2"]["bias"]["variance_precise"]["count"], 5);

  auto verify = nlohmann::json::parse(Read(dir / "verify_quantization.json"));
  EXPECT_EQ(verify["ok"], true) << verify.dump(2);
  ASSERT_EQ(verify["tensors"].size(), 2u);
  EXPECT_LE(verify["tensors"][0]["distinct_levels"].get<int>(), 256);
  EXPECT_EQ(nlohmann::json::parse(Read(dir / "flops_bitops.json"))["per_sample"]["bitops"], 5120);

  for (const char* k : {"test_acc_before", "test_acc_after_passes", "test_acc_after_finetune"}) {
    ASSERT_TRUE(r->metrics.count(k)) << k;
    EXPECT_GE(r->metrics[k], 0.0);
    EXPECT_LE(r->metrics[k], 1.0);
  }
  EXPECT_GT(r->metrics["test_acc_before"], 0.3);  // the model learned something
  // The reported accuracy after fine-tuning is that of the checkpoint the
  // transform saved, recomputed here from its outputs on the same test split.
  ASSERT_EQ(r->text.find("differs from the one the checkpoint was trained on"), std::string::npos)
      << r->text;
  {
    auto logits = RunCheckpointForward(r->checkpoint, data->test.x, data->test.rows);
    ASSERT_TRUE(logits.ok()) << logits.status();
    const int64_t classes = data->n_classes;
    ASSERT_EQ(logits->size(), static_cast<size_t>(data->test.rows * classes));
    int64_t correct = 0;
    for (int64_t i = 0; i < data->test.rows; ++i) {
      const float* row = logits->data() + i * classes;
      correct += std::max_element(row, row + classes) - row == data->test.y[i];
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(data->test.rows);
    // Batched and whole-split forwards may round differently: allow one tie.
    EXPECT_NEAR(r->metrics["test_acc_after_finetune"], accuracy, 1.5 / data->test.rows);
  }
  EXPECT_EQ(recorder.names.size(), 6u);
  EXPECT_EQ(recorder.names.front(), "test_loss_before");
  EXPECT_EQ(recorder.names.back(), "test_acc_after_finetune");
  o.callback = nullptr;

  // Cross-check the transformed checkpoint against numpy.
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  const int64_t rows = 64;
  std::vector<float> x(rows * 16);
  for (auto& v : x) v = dist(rng);
  auto y = RunCheckpointForward(r->checkpoint, x, rows);
  ASSERT_TRUE(y.ok()) << y.status();
  std::ofstream(tmp / "x.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  std::ofstream(tmp / "y.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(y->data()), y->size() * sizeof(float));
  auto reference = testing::RunProcess(
      {"/usr/bin/python3", QSWEEP_SOURCE_DIR "/tests/passes/quant_reference.py", r->state_dict,
       (tmp / "x.bin").string(), (tmp / "y.bin").string(), "64", "bn,relu,linear,relu", "8", "4"});
  EXPECT_EQ(reference.code, 0) << reference.out << reference.err;

  // Other arithmetics: minifloat ReLU inputs and a ternary Linear whose
  // thresholds come from profiled statistics, re-applied when the
  // transformed checkpoint is loaded.
  std::ofstream(tmp / "mixed.toml") << R"toml(
project = "mixed"
[passes.profile_statistics]
by = "type"
target_weight_nodes = ["linear"]
target_activation_nodes = ["linear"]
num_samples = 16
[passes.profile_statistics.weight_statistics.abs_mean]
[passes.profile_statistics.activation_statistics.abs_mean]
[passes.quantize]
by = "regex_name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize."seq_blocks_(1|3)".config]
name = "minifloat_ieee"
data_in_width = 8
data_in_exponent_width = 4
[passes.quantize."seq_blocks_2".config]
name = "ternary"
data_in_width = 2
weight_width = 2
weight_scaling_factor = true
bias_width = 2
)toml";
  o.config_path = (tmp / "mixed.toml").string();
  o.fine_tune_epochs = 0;
  auto mixed = RunTransform(o);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  auto mverify =
      nlohmann::json::parse(Read(fs::path(mixed->output_dir) / "verify_quantization.json"));
  EXPECT_EQ(mverify["ok"], true) << mverify.dump(2);
  EXPECT_LE(mverify["tensors"][0]["distinct_levels"].get<int>(), 3);  // ternary weight
  EXPECT_NE(mixed->text.find("ReLUMinifloatIEEE"), std::string::npos);
  auto m1 = RunCheckpointForward(mixed->checkpoint, x, rows);
  ASSERT_TRUE(m1.ok()) << m1.status();
  EXPECT_NE(*m1, *y);

  // A bad config surfaces as a clear error.
  std::ofstream(tmp / "bad.toml") << "[passes.quantize]\nby = \"name\"\n"
                                     "[passes.quantize.seq_blocks_9.config]\nname = \"integer\"\n";
  o.config_path = (tmp / "bad.toml").string();
  auto bad = RunTransform(o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("seq_blocks_9"), std::string::npos) << bad.status();
  fs::remove_all(tmp);
}

// Quantization-aware fine-tuning runs through the trainer (TrainNetwork):
// the transform's fine-tuned weights and metrics are exactly those of the
// trainer's loop on the same quantized network, config and seed, and that
// loop is the fine-tuning the transform always had: Adam at a constant
// learning rate, torch::manual_seed(seed) then one randperm per epoch, a step
// per batch (written out here as the independent reference).
TEST(Transform, FineTuningIsTheTrainersLoop) {
  fs::path tmp = fs::temp_directory_path() / ("qsweep_finetune_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  TrainConfig cfg = TinyConfig(tmp, 3000, 1);
  cfg.seed = 7;
  Dataset loaded;
  std::string best;
  ASSERT_NO_FATAL_FAILURE(TrainTiny(cfg, tmp, loaded, best));
  const Dataset* data = &loaded;
  ASSERT_NE(data->train_val.rows % 50, 1);  // no one-row final batch (see below)

  fs::path config = tmp / "q.toml";
  std::ofstream(config) << testing::kQuantizeLinearByType;
  TransformOptions o;
  o.config_path = config.string();
  o.load = best;
  o.overrides = {{"batch_size", 50}, {"project_dir", (tmp / "out").string()}};
  o.fine_tune_epochs = 2;
  auto r = RunTransform(o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto transformed = ReadCheckpointInfo(r->checkpoint);
  ASSERT_TRUE(transformed.ok()) << transformed.status();

  // The same quantized network, fine-tuned by the trainer.
  auto Quantized = [&] {
    auto net = LoadCheckpointNetwork(best, torch::kCPU);
    EXPECT_TRUE(net.ok()) << net.status();
    EXPECT_TRUE(ApplyQuantizationMeta(**net, transformed->meta["quantization"]).ok());
    return *net;
  };
  TrainConfig tune = cfg;
  tune.batch_size = 50;
  tune.max_epochs = 2;
  auto net = Quantized();
  auto tuned = TrainNetwork(net, tune, *data, TrainOptions{},
                            NetworkTraining{.constant_lr = true, .evaluate_epochs = false});
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_EQ(tuned->status, "succeeded");
  EXPECT_EQ(tuned->epochs_completed, 2);
  auto [tx, ty] = SplitTensors(data->test, data->n_features, torch::kCPU);
  const EvalResult ev = EvaluateNetwork(*net, tx, ty, 50);
  EXPECT_EQ(r->metrics["test_acc_after_finetune"], ev.accuracy);
  EXPECT_EQ(r->metrics["test_loss_after_finetune"], ev.loss);
  auto outputs = [&](Network& n) {
    torch::NoGradGuard no_grad;
    n.eval();
    torch::Tensor out = n.Forward(tx).contiguous();
    return std::vector<float>(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  };
  auto saved = RunCheckpointForward(r->checkpoint, data->test.x, data->test.rows);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(*saved, outputs(*net));

  // The reference loop, written out.
  auto ref = Quantized();
  SetThreadIntraOpThreads(static_cast<int>(tune.threads));
  auto opt = FlatOptimizer::Create(ref->parameters(), {"adam", tune.learning_rate, 0.0});
  ASSERT_TRUE(opt.ok()) << opt.status();
  auto [x, y] = SplitTensors(data->train_val, data->n_features, torch::kCPU);
  torch::manual_seed(static_cast<uint64_t>(tune.seed));
  ref->train();
  for (int epoch = 0; epoch < 2; ++epoch) {
    torch::Tensor perm = torch::randperm(x.size(0), torch::TensorOptions().dtype(torch::kLong));
    for (int64_t start = 0; start < x.size(0); start += 50) {
      torch::Tensor idx = perm.narrow(0, start, std::min<int64_t>(50, x.size(0) - start));
      (*opt)->ZeroGrad();
      torch::nn::functional::cross_entropy(ref->Forward(x.index_select(0, idx)),
                                           y.index_select(0, idx))
          .backward();
      (*opt)->Step();
    }
  }
  EXPECT_EQ(*saved, outputs(*ref));
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace qsweep
