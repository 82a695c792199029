// The packed engine (packed_trainer.h): its hand-written forward/backward
// against the autograd loop, and packed trials against the same trials trained
// alone.
#include "worker/core/torch/packed_trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/torch/test_util.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/trainer.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using testing_util::BlobDataset;
using testing_util::TempDir;

class Recorder : public TrainCallback {
 public:
  explicit Recorder(std::vector<std::string>* finish_log = nullptr, std::string tag = "")
      : finish_log_(finish_log), tag_(std::move(tag)) {}
  void OnMetric(const MetricPoint& m) override {
    if (m.name != "epoch_seconds" && m.name != "samples_per_second") metrics.push_back(m);
  }
  void OnProgress(const TrainProgress& p) override {
    ++progress_calls;
    last = p;
  }
  bool ShouldStop() override { return stop_after >= 0 && progress_calls >= stop_after; }
  void OnFinished(const TrainResult& r) override {
    ++finished;
    status = r.status;
    if (finish_log_) finish_log_->push_back(tag_);
  }

  std::vector<MetricPoint> metrics;
  TrainProgress last;
  int progress_calls = 0;
  int stop_after = -1;
  int finished = 0;
  std::string status;

 private:
  std::vector<std::string>* finish_log_;
  std::string tag_;
};

const Dataset& Blobs() {
  static const Dataset d = BlobDataset(4000, 1000);
  return d;
}

TrainConfig Config(int64_t seed, double lr, int64_t epochs) {
  TrainConfig c;
  c.model = "m";
  c.dataset = "blobs-test";
  c.batch_size = 128;
  c.seed = seed;
  c.learning_rate = lr;
  c.max_epochs = epochs;
  c.log_every_n_steps = 5;
  c.threads = 1;
  return c;
}

ModelSpec Model(const std::string& name) {
  if (name == "jsc-10x") {
    auto s = ResolveModel(std::string(QSWEEP_SOURCE_DIR) + "/examples/models/jsc-10x.toml");
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  auto s = ZooModel(name);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

// The same metric series (names, steps, epochs) with values within `tol`
// (relative to max(1, |value|)); returns the largest difference seen.
double ExpectSameMetrics(const Recorder& got, const Recorder& want, double tol,
                         const std::string& what) {
  EXPECT_EQ(got.metrics.size(), want.metrics.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < std::min(got.metrics.size(), want.metrics.size()); ++i) {
    const MetricPoint& a = got.metrics[i];
    const MetricPoint& b = want.metrics[i];
    EXPECT_EQ(a.name, b.name) << what << " #" << i;
    EXPECT_EQ(a.step, b.step) << what << " " << a.name;
    EXPECT_EQ(a.epoch, b.epoch) << what << " " << a.name;
    const double d = std::abs(a.value - b.value) / std::max(1.0, std::abs(b.value));
    worst = std::max(worst, d);
    EXPECT_LE(d, tol) << what << " " << a.name << " step " << a.step << ": " << a.value << " vs "
                      << b.value;
  }
  return worst;
}

void ExpectSameResult(const TrainResult& got, const TrainResult& want, double tol,
                      const std::string& what) {
  EXPECT_EQ(got.status, want.status) << what;
  EXPECT_EQ(got.message, want.message) << what;
  EXPECT_EQ(got.global_steps, want.global_steps) << what;
  EXPECT_EQ(got.epochs_completed, want.epochs_completed) << what;
  for (const auto& [name, value] : want.final_metrics) {
    if (name == "epoch_seconds" || name == "samples_per_second") continue;
    ASSERT_TRUE(got.final_metrics.count(name)) << what << " " << name;
    EXPECT_NEAR(got.final_metrics.at(name), value, tol * std::max(1.0, std::abs(value)))
        << what << " " << name;
  }
}

// The hand-written forward/backward (a pack of one, TrainModel's default)
// against the autograd loop, for three models and the three optimizers, with
// gradient accumulation and max_steps.
TEST(PackedTrainerTest, SingleTrialMatchesAutograd) {
  struct Case {
    std::string model, optimizer;
    double weight_decay;
    int64_t accumulate, max_steps;
  };
  const std::vector<Case> cases = {
      {"jsc-tiny", "adam", 0, 1, -1},    {"jsc-toy", "adam", 0, 1, -1},
      {"jsc-10x", "adam", 0, 1, -1},     {"jsc-toy", "sgd", 0, 1, -1},
      {"jsc-10x", "adamw", 1e-2, 1, -1}, {"jsc-toy", "adam", 1e-3, 3, 20},
  };
  for (const Case& k : cases) {
    const std::string what = k.model + "/" + k.optimizer + "/acc" + std::to_string(k.accumulate);
    TrainConfig c = Config(7, 5e-3, 3);
    c.training_optimizer = k.optimizer;
    c.weight_decay = k.weight_decay;
    c.accumulate_grad_batches = k.accumulate;
    c.max_steps = k.max_steps;
    Recorder packed, autograd;
    TrainOptions po, ao;
    po.callback = &packed;
    ao.callback = &autograd;
    ao.use_autograd = true;
    auto a = TrainModel(c, Model(k.model), Blobs(), po);
    auto b = TrainModel(c, Model(k.model), Blobs(), ao);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    const double worst = ExpectSameMetrics(packed, autograd, 1e-5, what);
    ExpectSameResult(*a, *b, 1e-5, what);
    EXPECT_EQ(packed.finished, 1);
    EXPECT_EQ(autograd.finished, 1);
    std::printf("%-28s largest relative difference to autograd: %.3g\n", what.c_str(), worst);
  }
}

// Three trials of different seeds, learning rates and epochs trained as one
// pack give the metrics, results and checkpoints of the same trials trained
// alone; the shortest leaves the pack first (and reports then) while the others
// go on.
TEST(PackedTrainerTest, PackedTrialsMatchAloneAndLeaveEarly) {
  for (const std::string model : {"jsc-tiny", "jsc-toy", "jsc-10x"}) {
    const std::vector<TrainConfig> configs = {Config(0, 1e-2, 2), Config(1, 3e-3, 4),
                                              Config(0, 5e-3, 3)};
    TempDir dir("packed_" + model);
    std::vector<std::string> finish_order;
    std::vector<std::unique_ptr<Recorder>> packed_rec;
    std::vector<PackedTrial> trials;
    for (size_t i = 0; i < configs.size(); ++i) {
      packed_rec.push_back(std::make_unique<Recorder>(&finish_order, std::to_string(i)));
      PackedTrial t{configs[i], {}};
      t.options.callback = packed_rec.back().get();
      t.options.checkpoint_dir = dir.File("p" + std::to_string(i));
      t.options.provenance = {{"job", i}};
      trials.push_back(t);
    }
    auto packed = TrainPacked(trials, Model(model), Blobs());
    ASSERT_TRUE(packed.ok()) << packed.status();
    ASSERT_EQ(packed->size(), 3u);
    EXPECT_EQ(finish_order, (std::vector<std::string>{"0", "2", "1"})) << model;
    double worst = 0;
    for (size_t i = 0; i < configs.size(); ++i) {
      const std::string what = model + " trial " + std::to_string(i);
      Recorder alone_rec;
      TrainOptions o;
      o.callback = &alone_rec;
      o.checkpoint_dir = dir.File("a" + std::to_string(i));
      auto alone = TrainModel(configs[i], Model(model), Blobs(), o);
      ASSERT_TRUE(alone.ok()) << alone.status();
      worst = std::max(worst, ExpectSameMetrics(*packed_rec[i], alone_rec, 1e-5, what));
      ExpectSameResult((*packed)[i], *alone, 1e-5, what);
      EXPECT_EQ((*packed)[i].epochs_completed, configs[i].max_epochs) << what;
      EXPECT_EQ(packed_rec[i]->finished, 1) << what;
      // The trial's own checkpoint holds its weights: it evaluates to its
      // logged test metrics.
      auto eval = EvaluateCheckpoint((*packed)[i].last_checkpoint, Blobs(), "test", 128, "");
      ASSERT_TRUE(eval.ok()) << eval.status();
      EXPECT_NEAR(eval->loss, (*packed)[i].final_metrics.at("test_loss_epoch"), 1e-5) << what;
      EXPECT_NEAR(eval->accuracy, (*packed)[i].final_metrics.at("test_acc_epoch"), 1e-3) << what;
      auto info = ReadCheckpointInfo((*packed)[i].last_checkpoint);
      ASSERT_TRUE(info.ok()) << info.status();
      EXPECT_EQ(info->meta["provenance"]["job"], i) << what;
      EXPECT_EQ(info->meta["seed"], configs[i].seed) << what;
      EXPECT_EQ(info->meta["epoch"], configs[i].max_epochs - 1) << what;
    }
    std::printf("%-10s largest relative difference packed vs alone: %.3g\n", model.c_str(), worst);
  }
}

// A cancelled trial and a diverging trial leave the pack; the others are
// unaffected.
TEST(PackedTrainerTest, CancelAndDivergenceLeaveThePackAlone) {
  auto no_bn = ModelFromToml(
      "layers = [{type = \"linear\", width = 64}, {type "
      "= \"relu\"}, {type = \"linear\"}]\n",
      "no-bn");
  ASSERT_TRUE(no_bn.ok()) << no_bn.status();
  std::vector<TrainConfig> configs = {Config(0, 1e-2, 3), Config(0, 10, 3), Config(2, 1e-2, 3)};
  for (auto& c : configs) c.training_optimizer = "sgd";
  std::vector<std::unique_ptr<Recorder>> rec;
  std::vector<PackedTrial> trials;
  for (const auto& c : configs) {
    rec.push_back(std::make_unique<Recorder>());
    trials.push_back({c, {}});
    trials.back().options.callback = rec.back().get();
  }
  rec[2]->stop_after = 40;  // cancelled in the second epoch
  auto packed = TrainPacked(trials, *no_bn, Blobs());
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_EQ((*packed)[1].status, "diverged");
  EXPECT_THAT((*packed)[1].message, HasSubstr("diverged: loss is"));
  EXPECT_EQ((*packed)[2].status, "cancelled");
  EXPECT_EQ((*packed)[2].global_steps, 40);
  EXPECT_EQ((*packed)[0].status, "succeeded");
  for (size_t i = 0; i < configs.size(); ++i) {
    Recorder alone_rec;
    alone_rec.stop_after = rec[i]->stop_after;
    TrainOptions o;
    o.callback = &alone_rec;
    auto alone = TrainModel(configs[i], *no_bn, Blobs(), o);
    ASSERT_TRUE(alone.ok()) << alone.status();
    ExpectSameMetrics(*rec[i], alone_rec, 1e-5, "trial " + std::to_string(i));
    ExpectSameResult((*packed)[i], *alone, 1e-5, "trial " + std::to_string(i));
    EXPECT_EQ(rec[i]->finished, 1);
  }
  // The divergence is reported at its exact step, as the autograd loop does.
  Recorder ag;
  TrainOptions ao;
  ao.callback = &ag;
  ao.use_autograd = true;
  auto autograd = TrainModel(configs[1], *no_bn, Blobs(), ao);
  ASSERT_TRUE(autograd.ok()) << autograd.status();
  EXPECT_EQ((*packed)[1].message, autograd->message);
  EXPECT_EQ((*packed)[1].global_steps, autograd->global_steps);
}

TEST(PackedTrainerTest, RejectsWhatCannotBePacked) {
  std::vector<PackedTrial> trials = {{Config(0, 1e-2, 2), {}}, {Config(1, 1e-2, 2), {}}};
  trials[1].config.batch_size = 64;
  auto r = TrainPacked(trials, Model("jsc-toy"), Blobs());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("trial 1"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("batch_size"));
  for (const char* key : {"training_optimizer", "accumulate_grad_batches", "threads"}) {
    TrainConfig b = Config(0, 1e-2, 2);
    if (std::string(key) == "training_optimizer") b.training_optimizer = "sgd";
    if (std::string(key) == "accumulate_grad_batches") b.accumulate_grad_batches = 2;
    if (std::string(key) == "threads") b.threads = 2;
    absl::Status s = CheckPackable(Config(0, 1e-2, 2), b);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(s.message()), HasSubstr(key));
  }
  EXPECT_TRUE(CheckPackable(Config(0, 1e-2, 2), Config(5, 3e-3, 9)).ok());
  EXPECT_FALSE(TrainPacked({}, Model("jsc-toy"), Blobs()).ok());

  // Dropout(p > 0) is not packable; TrainModel trains it with the autograd
  // loop.
  auto dropout = ModelFromToml("hidden = [8]\ndropout = 0.2\n", "drop");
  ASSERT_TRUE(dropout.ok()) << dropout.status();
  EXPECT_EQ(CheckPackableModel(*dropout).code(), absl::StatusCode::kUnimplemented);
  auto d = TrainPacked({{Config(0, 1e-2, 1), {}}}, *dropout, Blobs());
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("Dropout"));
  auto alone = TrainModel(Config(0, 1e-2, 1), *dropout, Blobs(), {});
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->status, "succeeded");
}

// Intra-op threads are set per thread: a job thread's setting does not change
// another's.
TEST(PackedTrainerTest, IntraOpThreadsArePerThread) {
  EXPECT_EQ(SetThreadIntraOpThreads(1), 1);
  int in_thread = 0, after = 0;
  std::thread t([&] {
    in_thread = SetThreadIntraOpThreads(2);
    // Training on this thread keeps its own setting.
    TrainConfig c = Config(0, 1e-2, 1);
    c.threads = 2;
    EXPECT_TRUE(TrainModel(c, Model("jsc-tiny"), Blobs(), {}).ok());
    after = SetThreadIntraOpThreads(2);
  });
  t.join();
  EXPECT_EQ(in_thread, 2);
  EXPECT_EQ(after, 2);
  EXPECT_EQ(ThreadIntraOpThreads(), 1);
}

// ------------------------------------------------------------------- resume

// Copies the resume state written after `at_epochs` epochs to `copy`.
class StateCopier : public Recorder {
 public:
  StateCopier(int64_t at_epochs, std::string copy) : at_(at_epochs), copy_(std::move(copy)) {}
  void OnResumeState(const std::string& path, int64_t epochs_done) override {
    states.push_back(epochs_done);
    if (epochs_done == at_) {
      std::filesystem::copy_file(path, copy_, std::filesystem::copy_options::overwrite_existing);
    }
  }
  std::vector<int64_t> states;

 private:
  int64_t at_;
  std::string copy_;
};

std::string FileBytes(const std::string& path) { return testing_util::ReadFile(path); }

// The weights of a checkpoint as exported bytes (equal bytes = equal tensors).
std::string ExportedWeights(const std::string& checkpoint, const std::string& out) {
  EXPECT_TRUE(ExportStateDict(checkpoint, out).ok()) << checkpoint;
  return FileBytes(out);
}

// Issue 9 §1: a trial resumed from the state written after epoch k gives
// exactly the uninterrupted run's metrics from epoch k on, its final result
// and its best/last checkpoint weights, bit for bit (CPU, same threads). On
// the packed engine (Adam with weight decay, BatchNorm) and on the autograd
// loop with Dropout (whose masks come from the restored generator).
TEST(ResumeTest, ResumedTrialEqualsTheUninterruptedOneBitForBit) {
  ModelSpec dropout = Model("jsc-tiny");
  dropout.layers.insert(dropout.layers.begin() + 2, {LayerKind::kDropout, 0, 0, 0.3});
  {  // the inserted layer's width: that of the layer before it
    const LayerSpec& before = dropout.layers[1];
    dropout.layers[2].in = dropout.layers[2].out = before.out;
  }
  struct Case {
    std::string what;
    ModelSpec spec;
    bool autograd;
    std::string optimizer;
  };
  for (const Case& c : {Case{"packed engine, adamw", Model("jsc-toy"), false, "adamw"},
                        Case{"autograd with dropout, sgd", dropout, true, "sgd"}}) {
    SCOPED_TRACE(c.what);
    TempDir dir("resume");
    TrainConfig config = Config(7, 1e-2, 5);
    config.training_optimizer = c.optimizer;
    config.weight_decay = c.optimizer == "adamw" ? 1e-2 : 0.0;
    StateCopier full(2, dir.File("after2.qsr"));
    TrainOptions o;
    o.checkpoint_dir = dir.File("full");
    o.resume_state_out = dir.File("full-state.qsr");
    o.callback = &full;
    o.use_autograd = c.autograd;
    auto a = TrainModel(config, c.spec, Blobs(), o);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->status, "succeeded");
    // One state per epoch but the last.
    EXPECT_EQ(full.states, (std::vector<int64_t>{1, 2, 3, 4}));

    Recorder resumed;
    TrainOptions r;
    r.checkpoint_dir = dir.File("resumed");
    r.resume_from = dir.File("after2.qsr");
    r.callback = &resumed;
    r.use_autograd = c.autograd;
    auto b = TrainModel(config, c.spec, Blobs(), r);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->resumed_from_epoch, 2);
    EXPECT_EQ(a->resumed_from_epoch, 0);
    // The resumed run reports epochs 2.. only; they equal the full run's.
    Recorder tail;
    for (const auto& m : full.metrics)
      if (m.epoch >= 2) tail.metrics.push_back(m);
    ASSERT_FALSE(resumed.metrics.empty());
    EXPECT_EQ(resumed.metrics.front().epoch, 2);
    ExpectSameMetrics(resumed, tail, 0.0, "resumed metrics");
    ExpectSameResult(*b, *a, 0.0, "resumed result");
    EXPECT_EQ(b->final_metrics.at("best_epoch"), a->final_metrics.at("best_epoch"));
    ASSERT_FALSE(b->best_checkpoint.empty());
    EXPECT_EQ(ExportedWeights(b->best_checkpoint, dir.File("b-best.pt")),
              ExportedWeights(a->best_checkpoint, dir.File("a-best.pt")));
    EXPECT_EQ(ExportedWeights(b->last_checkpoint, dir.File("b-last.pt")),
              ExportedWeights(a->last_checkpoint, dir.File("a-last.pt")));
  }
}

TEST(ResumeTest, AnotherTrialsStateOrAMixedPackIsRefused) {
  TempDir dir("resume_bad");
  StateCopier full(1, dir.File("after1.qsr"));
  TrainOptions o;
  o.resume_state_out = dir.File("state.qsr");
  o.callback = &full;
  ASSERT_TRUE(TrainModel(Config(1, 1e-2, 3), Model("jsc-tiny"), Blobs(), o).ok());

  TrainOptions r;
  r.resume_from = dir.File("after1.qsr");
  auto other_seed = TrainModel(Config(2, 1e-2, 3), Model("jsc-tiny"), Blobs(), r);
  ASSERT_FALSE(other_seed.ok());
  EXPECT_EQ(other_seed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other_seed.status().message(), HasSubstr("'config.seed' differs"));

  auto done = TrainModel(Config(1, 1e-2, 1), Model("jsc-tiny"), Blobs(), r);
  ASSERT_FALSE(done.ok());  // max_epochs differs: another trial
  EXPECT_THAT(done.status().message(), HasSubstr("config.max_epochs"));

  std::ofstream(dir.File("junk.qsr")) << "not a state";
  r.resume_from = dir.File("junk.qsr");
  auto junk = TrainModel(Config(1, 1e-2, 3), Model("jsc-tiny"), Blobs(), r);
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kDataLoss);

  // A pack starts its trials at one epoch: a resumed trial beside a fresh one
  // is refused, naming both epochs.
  PackedTrial fresh{Config(3, 1e-2, 3), {}};
  PackedTrial resumed{Config(1, 1e-2, 3), {}};
  resumed.options.resume_from = dir.File("after1.qsr");
  auto mixed = TrainPacked({fresh, resumed}, Model("jsc-tiny"), Blobs());
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mixed.status().message(), HasSubstr("trial 1 starts at epoch 1"));
}

}  // namespace
}  // namespace qsweep
