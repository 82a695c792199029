// INTERNAL, torch-ful header (trainer.cc, packed_trainer.cc and their tests):
// the per-epoch resume state of one trial (issue 9 §1).
//
// File format: a LibTorch serialize archive (zip), written atomically:
//   "qsweep_resume"    string IValue: JSON {"format": "qsweep-resume",
//                      "format_version": 1, "identity": {...}, "epochs_done",
//                      "global_step", "best_val_loss" (null = none),
//                      "epochs_completed", "final_metrics", "epoch_metrics",
//                      "train_seconds_total", "samples_total"}
//   "state_dict"       Dict[str, Tensor]: the model's parameters and buffers
//                      (BatchNorm running statistics and num_batches_tracked)
//   "optimizer"        sub-archive (FlatOptimizer::Save: step, moments, lr)
//   "generator"        uint8 tensor: the trial's CPU generator state (its next
//                      shuffles and dropout masks)
//   "best_checkpoint"  uint8 tensor: the bytes of best.ckpt, when one exists
// The identity (config keys that decide the training, model spec, dataset
// hash) must equal the resuming trial's: a state never continues another
// trial. The learning-rate schedule is a function of the epoch, so
// epochs_done restores it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/network.h"
#include "worker/core/torch/optimizer.h"

namespace qsweep {

// The counters a trainer keeps besides model, optimizer and generator.
struct ResumeCounters {
  int64_t epochs_done = 0;  // completed epochs: training continues at this 0-based epoch
  int64_t global_step = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  int64_t epochs_completed = 0;
  std::map<std::string, double> final_metrics;  // TrainResult::final_metrics so far
  std::map<std::string, double> epoch_metrics;  // of the last completed epoch
  double train_seconds_total = 0;
  int64_t samples_total = 0;
};

// What must be equal for a state to continue a trial: the config keys that
// decide the training (all but device, accelerator, threads, project_dir,
// project, data_dir, log_level), the model spec and the dataset hash.
nlohmann::json ResumeIdentity(const TrainConfig& config, const ModelSpec& spec,
                              const Dataset& data);

// Writes the state to `path` atomically (temporary file + rename); includes
// `best_checkpoint_path`'s bytes when that is not empty. INTERNAL naming the
// path on failure.
absl::Status WriteResumeState(const std::string& path, const nlohmann::json& identity,
                              const Network& net, const FlatOptimizer& optimizer,
                              const at::Generator& generator, const ResumeCounters& counters,
                              const std::string& best_checkpoint_path);

// Restores `net`, `optimizer` and `generator` from `path` and returns the
// counters; writes the stored best checkpoint to `best_checkpoint_out` (when
// the state has one and that is not empty) and sets `*has_best`.
// NOT_FOUND for a missing file, DATA_LOSS for a file that is not a resume
// state, FAILED_PRECONDITION naming the first key whose value differs when
// the identity is not `identity` (another trial's state), and when every
// epoch (max_epochs) is already done.
absl::StatusOr<ResumeCounters> ReadResumeState(const std::string& path,
                                               const nlohmann::json& identity, int64_t max_epochs,
                                               Network& net, FlatOptimizer& optimizer,
                                               at::Generator& generator,
                                               const std::string& best_checkpoint_out,
                                               bool* has_best);

}  // namespace qsweep
