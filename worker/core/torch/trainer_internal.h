// INTERNAL, torch-ful header: helpers shared by the autograd trainer
// (trainer.cc) and the packed engine (packed_trainer.cc).
#pragma once

#include <torch/torch.h>

#include <exception>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/network.h"
#include "worker/core/torch/trainer.h"

namespace qsweep {

// The message of a LibTorch error without its C++ backtrace.
std::string TorchMessage(const std::exception& e);

// INVALID_ARGUMENT when the dataset's width/classes differ from the model's or
// a split is inconsistent (naming the split and row).
absl::Status CheckDataFitsModel(const Dataset& data, const ModelSpec& spec);

// batch_size, max_epochs, accumulate_grad_batches, threads >= 1;
// trainer_precision "32".
absl::Status CheckConfig(const TrainConfig& c);

// Tensors viewing a split's rows (no copy on CPU; the Dataset outlives them).
std::pair<torch::Tensor, torch::Tensor> SplitTensors(const DataSplit& s, int64_t n_features,
                                                     const torch::Device& device);

// MASE's evaluation, as TrainModel's epochs and EvaluateCheckpoint compute it:
// `net` in eval mode on rows x / labels y, loss = mean of the batch-mean losses
// over consecutive batches of `batch_size` rows, accuracy = micro.
// `max_batches` < 0: all batches. Restores the net's train/eval mode.
EvalResult EvaluateNetwork(Network& net, const torch::Tensor& x, const torch::Tensor& y,
                           int64_t batch_size, int64_t max_batches = -1);

// How TrainNetwork differs from TrainModel's loop.
struct NetworkTraining {
  // The learning rate stays at config.learning_rate (no cosine annealing).
  bool constant_lr = false;
  // Evaluate (val/test epoch metrics, best/last checkpoints) after each epoch.
  bool evaluate_epochs = true;
};

// Trains a network the caller built (e.g. a quantized one loaded from a
// checkpoint, already on config.device) with TrainModel's autograd loop:
// torch::manual_seed(config.seed) in place of the seeded initialisation, then
// the same optimizer, shuffles, batches, accumulation, divergence and
// cancellation as TrainModel (config.load_name is not read). The transform's
// quantization-aware fine-tuning runs through it. Errors as TrainModel's.
absl::StatusOr<TrainResult> TrainNetwork(const std::shared_ptr<Network>& net,
                                         const TrainConfig& config, const Dataset& data,
                                         const TrainOptions& options, const NetworkTraining& how);

}  // namespace qsweep
