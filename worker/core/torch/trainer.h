// Training and evaluation on LibTorch, behind a torch-free header so that
// callers (the worker, the CLI glue, tests) compile without <torch/torch.h>.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {

// One logged value under MASE's metric names: train_loss_step, train_acc_step,
// val_loss_epoch, val_acc_epoch, test_loss_epoch, test_acc_epoch, lr,
// epoch_seconds, samples_per_second.
struct MetricPoint {
  std::string name;
  int64_t step = 0;   // global optimizer step when logged
  int64_t epoch = 0;  // 0-based epoch
  double value = 0.0;
};

// Per-step progress, for progress bars and worker heartbeats.
struct TrainProgress {
  int64_t epoch = 0;              // 0-based
  int64_t max_epochs = 0;
  int64_t batch_in_epoch = 0;     // 1-based batches done in this epoch
  int64_t batches_per_epoch = 0;
  int64_t global_step = 0;
  double train_loss = 0.0;        // latest batch
  double train_acc = 0.0;         // latest batch
  double val_acc = -1.0;          // latest val_acc_epoch, -1 before the first
  double val_loss = -1.0;
  double elapsed_seconds = 0.0;
};

// Receives metrics and progress. Called on the training thread.
class TrainCallback {
 public:
  virtual ~TrainCallback() = default;
  virtual void OnMetric(const MetricPoint& metric) {}
  virtual void OnProgress(const TrainProgress& progress) {}
  // Polled between steps; true stops training with status "cancelled".
  virtual bool ShouldStop() { return false; }
};

struct TrainOptions {
  // Folder for best.ckpt and last.ckpt; created if missing. "" = no checkpoints.
  std::string checkpoint_dir;
  // Not owned; may be null.
  TrainCallback* callback = nullptr;
  // Extra provenance stored in checkpoints (e.g. job id). Default: empty object.
  nlohmann::json provenance = nlohmann::json::object();
};

struct TrainResult {
  std::string status;   // "succeeded", "diverged" or "cancelled"
  std::string message;  // e.g. "diverged: loss is NaN at step 12"
  int64_t global_steps = 0;
  int64_t epochs_completed = 0;
  // Last values of the epoch metrics (val_*_epoch, test_*_epoch), plus
  // "best_val_loss_epoch" and "best_epoch".
  std::map<std::string, double> final_metrics;
  std::string best_checkpoint;  // path, "" if none was written
  std::string last_checkpoint;
  double wall_seconds = 0.0;
  double samples_per_second = 0.0;  // training samples / training time
};

// Trains `spec` on `data` as MASE does: seeded init, Adam/AdamW/SGD, cosine
// schedule per epoch down to 1e-6, cross-entropy on the raw outputs, val on the
// training split in eval mode, test every epoch, best (lowest val_loss_epoch)
// and last checkpoints. A NaN/inf loss ends with status "diverged", not an error.
// Errors (bad device, I/O) come back as a Status with context.
absl::StatusOr<TrainResult> TrainModel(const TrainConfig& config, const ModelSpec& spec,
                                       const Dataset& data, const TrainOptions& options);

struct EvalResult {
  double loss = 0.0;      // mean of batch-mean losses (MASE's MeanMetric)
  double accuracy = 0.0;  // micro accuracy over all rows
  int64_t rows = 0;
};

// Evaluates a checkpoint on a split ("test" or "train_val") in eval mode.
absl::StatusOr<EvalResult> EvaluateCheckpoint(const std::string& checkpoint_path,
                                              const Dataset& data, const std::string& split,
                                              int64_t batch_size, const std::string& device);

}  // namespace qsweep
