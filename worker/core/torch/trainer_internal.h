// INTERNAL, torch-ful header: helpers shared by the autograd trainer
// (trainer.cc) and the packed engine (packed_trainer.cc).
#pragma once

#include <torch/torch.h>

#include <exception>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"

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

}  // namespace qsweep
