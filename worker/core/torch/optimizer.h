// INTERNAL, torch-ful header (torch layer and its tests only).
//
// FlatOptimizer: Adam / AdamW / SGD with MASE's settings, applied to all
// parameters at once. The parameters are re-seated as views into one flat
// buffer and their gradients as views into one flat gradient buffer, so a step
// is ~8 tensor ops in total instead of ~10 per parameter tensor (the per-op
// dispatch cost dominates for JSC-sized networks). The arithmetic per element
// is PyTorch's single-tensor algorithm (torch.optim.Adam / AdamW / SGD with
// default betas (0.9, 0.999), eps 1e-8, amsgrad off; SGD momentum 0.9,
// nesterov, weight decay 5e-4 as MASE fixes it).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

struct FlatOptimizerOptions {
  std::string kind = "adam";  // "adam", "adamw" or "sgd"
  double lr = 1e-5;           // Default: MASE's 1e-5
  double weight_decay = 0.0;  // adam/adamw only; sgd always uses 5e-4 (MASE)
};

class FlatOptimizer {
 public:
  // Re-seats `params` (float32 leaves on one device, requires_grad) as views of
  // one flat buffer, keeping their values, and their .grad as views of one flat
  // gradient buffer. The parameters must not be moved to another device or
  // replaced afterwards. INVALID_ARGUMENT for an unknown kind (naming the
  // allowed ones), a negative lr/weight decay, or mixed dtypes/devices.
  static absl::StatusOr<std::unique_ptr<FlatOptimizer>> Create(
      const std::vector<torch::Tensor>& params, const FlatOptimizerOptions& options);

  // Zeroes all gradients (one op). Gradients accumulate between calls.
  void ZeroGrad();
  // One optimizer step with the current learning rate.
  void Step();

  double lr() const { return options_.lr; }
  void set_lr(double lr) { options_.lr = lr; }
  int64_t step_count() const { return step_; }
  const FlatOptimizerOptions& options() const { return options_; }
  // Hyperparameters, as stored in checkpoints.
  nlohmann::json Describe() const;

  // Replaces the state with values trained elsewhere (the packed engine's row for one trial):
  // `first` is exp_avg (adam/adamw) or the momentum buffer (sgd), `second` exp_avg_sq (adam,
  // adamw; ignored for sgd); both flat, in parameter order.
  void SetState(int64_t step, double lr, const torch::Tensor& first, const torch::Tensor& second);

  // The state buffers, flat in parameter order: exp_avg and exp_avg_sq (adam,
  // adamw), or the momentum buffer and an undefined tensor (sgd).
  const torch::Tensor& first_state() const { return options_.kind == "sgd" ? momentum_ : exp_avg_; }
  const torch::Tensor& second_state() const { return exp_avg_sq_; }

  // State (step count, moment buffers, hyperparameters) into / from an archive.
  void Save(torch::serialize::OutputArchive& archive) const;
  // DATA_LOSS if the archive's state does not fit these parameters.
  absl::Status Load(torch::serialize::InputArchive& archive);

  static constexpr double kBeta1 = 0.9;
  static constexpr double kBeta2 = 0.999;
  static constexpr double kEps = 1e-8;
  static constexpr double kSgdMomentum = 0.9;
  static constexpr double kSgdWeightDecay = 5e-4;

 private:
  FlatOptimizer() = default;
  void AdamStep();
  void SgdStep();

  FlatOptimizerOptions options_;
  int64_t step_ = 0;
  torch::Tensor param_, grad_;          // flat views' storage
  torch::Tensor exp_avg_, exp_avg_sq_;  // adam, adamw
  torch::Tensor denom_;                 // scratch
  torch::Tensor momentum_;              // sgd
};

// CosineAnnealingLR(T_max = max_epochs, eta_min) in closed form: the learning
// rate for 0-based epoch e.
double CosineAnnealingLr(double lr0, int64_t epoch, int64_t max_epochs, double eta_min = 1e-6);

}  // namespace qsweep
