// qsweep-bench-train: trains with qsweep's trainer and prints one JSON line with the training
// throughput (median of per-epoch samples/s), in the same shape as the reference script's
// output. Driven by bench/train_throughput.py and bench/packed_throughput.py.
//
//   qsweep-bench-train --model jsc-toy --dataset jsc-synthetic --synthetic-rows 200000 \
//       --batch-size 256 --epochs 3 [--threads 1] [--lr 1e-3] [--engine packed|autograd]
//       [--trials K --mode packed|sequential] [--checkpoint-dir DIR [--resume-states 1]]
//
// --checkpoint-dir writes each trial's best/last checkpoints under DIR/t<k> as a worker does;
// --resume-states 1 also writes its per-epoch resume state there (what that costs the trainer).
//
// --trials K trains K trials (seeds 0..K-1, learning rates lr * 0.5^(k mod 3)) either as one
// pack (TrainPacked) or one after another (TrainModel each); samples_per_second_median is then
// the total: K * training rows / training seconds (median over the epochs of the pack, or the
// sum of the trials' rows over the sum of their training times).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/packed_trainer.h"
#include "worker/core/torch/trainer.h"

namespace {

class SpsRecorder : public qsweep::TrainCallback {
 public:
  void OnMetric(const qsweep::MetricPoint& m) override {
    if (m.name == "samples_per_second") sps.push_back(m.value);
    if (m.name == "epoch_seconds") epoch_seconds.push_back(m.value);
    if (m.name == "test_acc_epoch") test_acc = m.value;
    if (m.name == "val_acc_epoch") val_acc = m.value;
  }
  std::vector<double> sps;
  std::vector<double> epoch_seconds;  // training + validation + test
  double test_acc = -1, val_acc = -1;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  qsweep::TrainConfig c;
  c.model = "jsc-toy";
  c.dataset = "jsc-synthetic";
  c.synthetic_rows = 250000;
  c.batch_size = 256;
  c.max_epochs = 3;
  c.learning_rate = 1e-3;
  c.log_every_n_steps = 50;
  std::string engine = "packed", mode = "sequential";
  int64_t trials = 1;
  std::string checkpoint_dir;
  bool resume_states = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model")
      c.model = v;
    else if (k == "--dataset")
      c.dataset = v;
    else if (k == "--synthetic-rows")
      c.synthetic_rows = std::atoll(v.c_str());
    else if (k == "--batch-size")
      c.batch_size = std::atoll(v.c_str());
    else if (k == "--epochs")
      c.max_epochs = std::atoll(v.c_str());
    else if (k == "--threads")
      c.threads = std::atoll(v.c_str());
    else if (k == "--lr")
      c.learning_rate = std::atof(v.c_str());
    else if (k == "--data-dir")
      c.data_dir = v;
    else if (k == "--engine")
      engine = v;
    else if (k == "--trials")
      trials = std::atoll(v.c_str());
    else if (k == "--mode")
      mode = v;
    else if (k == "--checkpoint-dir")
      checkpoint_dir = v;
    else if (k == "--resume-states")
      resume_states = v == "1";
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  qsweep::DatasetRequest req{c.dataset, c.data_dir, c.synthetic_rows, 0};
  auto data = qsweep::LoadDataset(req);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(data.status().message()).c_str());
    return 1;
  }
  auto spec = qsweep::ResolveModel(c.model, data->n_features, data->n_classes);
  if (!spec.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(spec.status().message()).c_str());
    return 1;
  }
  if (engine != "packed" && engine != "autograd") {
    std::fprintf(stderr, "--engine must be packed or autograd, got %s\n", engine.c_str());
    return 2;
  }
  if (mode != "packed" && mode != "sequential") {
    std::fprintf(stderr, "--mode must be packed or sequential, got %s\n", mode.c_str());
    return 2;
  }
  std::vector<SpsRecorder> recs(static_cast<size_t>(std::max<int64_t>(trials, 1)));
  std::vector<qsweep::PackedTrial> pack;
  for (int64_t k = 0; k < trials; ++k) {
    qsweep::PackedTrial t{c, {}};
    t.config.seed = k;
    t.config.learning_rate = c.learning_rate * (k % 3 == 0 ? 1.0 : k % 3 == 1 ? 0.5 : 0.25);
    t.options.callback = &recs[k];
    t.options.use_autograd = engine == "autograd";
    if (!checkpoint_dir.empty()) {
      t.options.checkpoint_dir = checkpoint_dir + "/t" + std::to_string(k);
      if (resume_states) t.options.resume_state_out = t.options.checkpoint_dir + "/state.qsr";
    }
    pack.push_back(t);
  }
  double sps = 0, wall = 0;
  SpsRecorder& rec = recs[0];
  if (trials > 1 && mode == "packed") {
    auto r = qsweep::TrainPacked(pack, *spec, *data);
    if (!r.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    sps = static_cast<double>(trials) * Median(rec.sps);
    for (const auto& t : *r) wall = std::max(wall, t.wall_seconds);
  } else {
    double rows = 0, seconds = 0;
    for (auto& t : pack) {
      auto r = qsweep::TrainModel(t.config, *spec, *data, t.options);
      if (!r.ok()) {
        std::fprintf(stderr, "error: %s\n", std::string(r.status().message()).c_str());
        return 1;
      }
      const double m = Median(static_cast<SpsRecorder*>(t.options.callback)->sps);
      rows += static_cast<double>(data->train_val.rows);
      seconds += m > 0 ? static_cast<double>(data->train_val.rows) / m : 0;
      wall += r->wall_seconds;
    }
    sps = seconds > 0 ? rows / seconds : 0;
  }
  nlohmann::json out = {
      {"impl", "qsweep"},
      {"model", spec->name},
      {"params", spec->TrainableParams()},
      {"rows", data->train_val.rows},
      {"batch_size", c.batch_size},
      {"epochs", c.max_epochs},
      {"threads", c.threads},
      {"engine", engine},
      {"trials", trials},
      {"mode", mode},
      {"resume_states", resume_states},
      {"wall_seconds", wall},
      {"epoch_seconds_median", Median(rec.epoch_seconds)},
      // the validation (train split) and test passes of one epoch
      {"eval_seconds_median",
       Median(rec.epoch_seconds) -
           (Median(rec.sps) > 0 ? static_cast<double>(data->train_val.rows) / Median(rec.sps)
                                : 0.0)},
      {"samples_per_second_median", sps},
      {"val_acc", rec.val_acc},
      {"test_acc", rec.test_acc},
      {"dataset", data->DisplayName()}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
