// One Adam / AdamW step as a loop over a flat float buffer: torch.optim's
// single-tensor algorithm (amsgrad off), for FlatOptimizer and for each trial
// row of the packed engine, so that both compute the same bits. On a
// JSC-sized network the eight tensor ops this replaces cost more in dispatch
// than in arithmetic. Torch-free: raw pointers of CPU float tensors.
#ifndef QSWEEP_WORKER_CORE_TORCH_ADAM_H_
#define QSWEEP_WORKER_CORE_TORCH_ADAM_H_

#include <cstdint>

namespace qsweep {

struct AdamStepOptions {
  double lr = 0;
  double weight_decay = 0;
  bool decoupled = false;  // AdamW: the weight decay scales the parameters
  int64_t step = 1;        // this step's number, from 1 (bias corrections)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// Per element: (Adam) g += weight_decay * p, or (AdamW) p *= 1 - lr *
// weight_decay; m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2)
// * g²; p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps),
// in float with the scalars rounded to float.
void AdamStep(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
              const AdamStepOptions& o);

}  // namespace qsweep

#endif  // QSWEEP_WORKER_CORE_TORCH_ADAM_H_
