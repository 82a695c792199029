// Training and evaluation on LibTorch, behind a torch-free header so that
// callers (the worker, the CLI glue, tests) compile without <torch/torch.h>.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {

// One logged value under MASE's metric names: train_loss_step, train_acc_step
// (every log_every_n_steps optimizer steps: the loss and micro accuracy of that
// step's batch), and once per epoch val_loss_epoch, val_acc_epoch (on the
// training split in eval mode, as MASE), test_loss_epoch, test_acc_epoch (when
// the test split is not empty), lr (the learning rate used in that epoch),
// epoch_seconds (training + evaluation wall time) and samples_per_second
// (training rows / training-loop time).
struct MetricPoint {
  std::string name;
  int64_t step = 0;   // global optimizer step when logged
  int64_t epoch = 0;  // 0-based epoch
  double value = 0.0;
};

// Per-step progress, for progress bars and worker heartbeats.
struct TrainProgress {
  int64_t epoch = 0;  // 0-based
  int64_t max_epochs = 0;
  int64_t batch_in_epoch = 0;  // 1-based batches done in this epoch
  int64_t batches_per_epoch = 0;
  int64_t global_step = 0;
  double train_loss = 0.0;  // latest batch
  double train_acc = 0.0;   // batch of the latest train_acc_step metric
  double val_acc = -1.0;    // latest val_acc_epoch, -1 before the first
  double val_loss = -1.0;
  double elapsed_seconds = 0.0;
};

struct TrainResult;

// Receives metrics and progress. Called on the training thread. OnProgress is
// called after every training batch, so it must be cheap.
class TrainCallback {
 public:
  virtual ~TrainCallback() = default;
  virtual void OnMetric(const MetricPoint& metric) {}
  virtual void OnProgress(const TrainProgress& progress) {}
  // Polled between steps; true stops training with status "cancelled".
  virtual bool ShouldStop() { return false; }
  // Called once when the trial ends, with its result (also when it was trained in a pack and
  // other trials go on). Not called when training fails with an error Status.
  virtual void OnFinished(const TrainResult& result) {}
  // Called after each completed epoch that is not the trial's last, once
  // TrainOptions::resume_state_out holds the state after `epochs_done` epochs
  // (the file is rewritten after the next epoch: copy or send it before
  // returning). Training waits for the call to return.
  virtual void OnResumeState(const std::string& path, int64_t epochs_done) {}
};

struct TrainOptions {
  // Folder for best.ckpt and last.ckpt; created if missing. "" = no checkpoints.
  std::string checkpoint_dir;
  // Not owned; may be null.
  TrainCallback* callback = nullptr;
  // Extra provenance stored in checkpoints (e.g. job id). Default: empty object.
  nlohmann::json provenance = nlohmann::json::object();
  // Train with the autograd loop even where the packed engine (packed_trainer.h) supports the
  // model: the reference the engine is tested and benchmarked against.
  bool use_autograd = false;
  // Resume (format in resume_state.h). Not empty: after every completed epoch
  // but the last, the trial's state (model, optimizer, generator, LR schedule
  // position, counters, best checkpoint) is written to this file and
  // callback->OnResumeState is called.
  std::string resume_state_out;
  // Not empty: a state written by an earlier run of this trial (same config
  // keys but device/threads/places, model and dataset). Training continues
  // at the epoch after the state's last one, reporting metrics from there on;
  // the result (final metrics, best checkpoint, epochs_completed, steps)
  // includes the earlier epochs, and equals that of an uninterrupted run bit
  // for bit on CPU with the same threads. FAILED_PRECONDITION for another
  // trial's state, DATA_LOSS for a bad file.
  std::string resume_from;
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
  // TrainOptions::resume_from given: the 0-based epoch training continued at
  // (the epochs before it came from the state). 0 = trained from the start.
  int64_t resumed_from_epoch = 0;
};

// Trains `spec` on `data` as MASE does: a generator seeded with `seed` (the
// job's own: the process-wide default generator is never seeded and no
// result depends on it, so jobs on several threads give the results each
// gives alone) then the PyTorch-identical initialisation, Adam/AdamW(lr,
// weight_decay) or SGD(momentum 0.9, nesterov, weight decay 5e-4),
// CosineAnnealingLR(T_max = max_epochs, eta_min = 1e-6) stepped per epoch,
// cross-entropy on the raw outputs, batches shuffled every epoch (randperm
// from that generator, as are dropout masks; no drop_last, except that a
// final batch of one row is skipped when the model has BatchNorm),
// accumulate_grad_batches, max_steps (the partial epoch is still evaluated),
// debug = 5 batches per split, val on the training split in eval mode, test
// every epoch, best (lowest
// val_loss_epoch) and last checkpoints into options.checkpoint_dir (rewritten
// after every epoch). With config.load_name set, training starts from those weights (a
// qsweep checkpoint or a pickled PyTorch state dict; "model." prefixes are
// stripped, as MASE's load_type pl does) instead of the seeded init.
// Same seed, data and config give identical metrics on CPU.
// Models of Linear, BatchNorm1d, ReLU (and Dropout p = 0) layers train through the packed
// engine as a pack of one (hand-written forward/backward, losses read at log steps and epoch
// ends only); other models, or options.use_autograd, use the autograd loop. Both give the same
// results to float tolerance (tests/torch/packed_trainer_test.cc). TrainProgress::train_loss
// is then the loss of the latest batch read (log steps, epoch ends), not of every batch. A
// divergence is still reported at the exact step it happened. The intra-op thread count
// (config.threads) is set for the calling thread only (SetThreadIntraOpThreads).
// A NaN/inf training loss ends with status "diverged" and the message
// "diverged: loss is NaN at step N" (N = 1-based optimizer step), not an
// error; ShouldStop() ends with status "cancelled". Both keep the checkpoints
// of the completed epochs. Errors (bad config values, data that does not fit
// the model, unavailable device, I/O, LibTorch failures) come back as a Status
// with context ("training model 'jsc-toy' failed at epoch 3: ...").
absl::StatusOr<TrainResult> TrainModel(const TrainConfig& config, const ModelSpec& spec,
                                       const Dataset& data, const TrainOptions& options);

struct EvalResult {
  double loss = 0.0;      // mean of batch-mean losses (MASE's MeanMetric)
  double accuracy = 0.0;  // micro accuracy over all rows
  int64_t rows = 0;
};

// Evaluates a checkpoint on a split ("test" or "train_val"; "train", "val" and
// "validation" mean train_val as in MASE) in eval mode. `device` as
// TrainConfig::device ("" = cpu). NOT_FOUND / DATA_LOSS for a missing or bad
// checkpoint, INVALID_ARGUMENT for a bad split, batch size or dataset shape.
absl::StatusOr<EvalResult> EvaluateCheckpoint(const std::string& checkpoint_path,
                                              const Dataset& data, const std::string& split,
                                              int64_t batch_size, const std::string& device);

// Evaluates a PyTorch state dict (a pickled dict of tensors named as in the
// PyTorch model, e.g. from `qsweep checkpoint export`; a "model." prefix is
// stripped) loaded into `spec`, on the test split in eval mode.
absl::StatusOr<EvalResult> EvaluateStateDict(const ModelSpec& spec, const std::string& weights_path,
                                             const Dataset& data, int64_t batch_size,
                                             const std::string& device);

// True when LibTorch was built with CUDA and a GPU is visible.
bool CudaAvailable();

}  // namespace qsweep
