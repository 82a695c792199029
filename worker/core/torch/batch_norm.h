// BatchNorm1d in training mode (batch statistics, running-statistics update)
// as loops over an [rows, K·C] block: K trials' C channels side by side, the
// packed engine's layout (K = 1 for a single network). LibTorch's CPU kernels
// allocate their outputs on every call and cost more in dispatch than in
// arithmetic at these sizes; these write into the caller's buffers.
//
// Every channel's values depend on that channel's column only, reduced over
// the rows in row order, so they do not depend on K (packing). A channel
// (k, c) reads its weight and bias at k·param_stride + c, so K trials' rows of
// a [K, P] parameter buffer serve without a copy; gradients are written the
// same way. Statistics are accumulated in double. Torch-free: raw pointers of
// CPU float tensors.
#ifndef QSWEEP_WORKER_CORE_TORCH_BATCH_NORM_H_
#define QSWEEP_WORKER_CORE_TORCH_BATCH_NORM_H_

#include <cstdint>

namespace qsweep {

struct BatchNormShape {
  int64_t rows = 0;          // N >= 2
  int64_t trials = 1;        // K
  int64_t channels = 0;      // C per trial
  int64_t param_stride = 0;  // between trials' weights / biases / their gradients
};

// y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and
// biased variance per channel; running_mean / running_var (contiguous K·C)
// move towards the batch mean and unbiased variance by `momentum`.
// save_mean / save_invstd (K·C) keep what Backward needs.
void BatchNormTrainForward(const BatchNormShape& s, const float* x, const float* weight,
                           const float* bias, double momentum, double eps, float* running_mean,
                           float* running_var, float* y, double* save_mean, double* save_invstd);

// Gradients of Forward's y: weight and bias gradients (written at the
// weight's layout), and the input gradient when `grad_x` is not null.
void BatchNormTrainBackward(const BatchNormShape& s, const float* grad_y, const float* x,
                            const float* weight, const double* save_mean, const double* save_invstd,
                            float* grad_x, float* grad_weight, float* grad_bias);

}  // namespace qsweep

#endif  // QSWEEP_WORKER_CORE_TORCH_BATCH_NORM_H_
