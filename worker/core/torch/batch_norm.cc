#include "worker/core/torch/batch_norm.h"

#include <cmath>
#include <vector>

namespace qsweep {
namespace {

// Index of channel j = k·C + c's parameter.
inline int64_t ParamAt(const BatchNormShape& s, int64_t j) {
  return (j / s.channels) * s.param_stride + j % s.channels;
}

// Per-channel work arrays, kept per thread so that a step allocates nothing
// once they have grown to the pack's width.
struct Scratch {
  std::vector<double> a, b, c;
  std::vector<float> alpha, beta;
  void Resize(int64_t n) {
    const size_t m = static_cast<size_t>(n);
    a.assign(m, 0.0);
    b.assign(m, 0.0);
    c.resize(m);
    alpha.resize(m);
    beta.resize(m);
  }
};

Scratch& ThreadScratch(int64_t channels) {
  thread_local Scratch scratch;
  scratch.Resize(channels);
  return scratch;
}

}  // namespace

void BatchNormTrainForward(const BatchNormShape& s, const float* x, const float* weight,
                           const float* bias, double momentum, double eps, float* running_mean,
                           float* running_var, float* y, double* save_mean, double* save_invstd) {
  const int64_t n = s.rows, J = s.trials * s.channels;
  Scratch& w = ThreadScratch(J);
  std::vector<double>& sum = w.a;
  std::vector<double>& sq = w.b;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * J;
    for (int64_t j = 0; j < J; ++j) sum[j] += row[j];
  }
  for (int64_t j = 0; j < J; ++j) save_mean[j] = sum[j] / static_cast<double>(n);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * J;
    for (int64_t j = 0; j < J; ++j) {
      const double d = row[j] - save_mean[j];
      sq[j] += d * d;
    }
  }
  std::vector<float>& alpha = w.alpha;
  std::vector<float>& beta = w.beta;
  for (int64_t j = 0; j < J; ++j) {
    const double var = sq[j] / static_cast<double>(n);
    save_invstd[j] = 1.0 / std::sqrt(var + eps);
    const int64_t p = ParamAt(s, j);
    const double a = save_invstd[j] * weight[p];
    alpha[j] = static_cast<float>(a);
    beta[j] = static_cast<float>(bias[p] - save_mean[j] * a);
    running_mean[j] =
        static_cast<float>((1 - momentum) * running_mean[j] + momentum * save_mean[j]);
    running_var[j] = static_cast<float>((1 - momentum) * running_var[j] +
                                        momentum * sq[j] / static_cast<double>(n - 1));
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * J;
    float* out = y + r * J;
    for (int64_t j = 0; j < J; ++j) out[j] = row[j] * alpha[j] + beta[j];
  }
}

void BatchNormTrainBackward(const BatchNormShape& s, const float* grad_y, const float* x,
                            const float* weight, const double* save_mean, const double* save_invstd,
                            float* grad_x, float* grad_weight, float* grad_bias) {
  const int64_t n = s.rows, J = s.trials * s.channels;
  Scratch& w = ThreadScratch(J);
  std::vector<double>& sum_g = w.a;
  std::vector<double>& dot = w.b;
  for (int64_t r = 0; r < n; ++r) {
    const float* g = grad_y + r * J;
    const float* row = x + r * J;
    for (int64_t j = 0; j < J; ++j) {
      sum_g[j] += g[j];
      dot[j] += g[j] * (row[j] - save_mean[j]);
    }
  }
  for (int64_t j = 0; j < J; ++j) {
    const int64_t p = ParamAt(s, j);
    grad_weight[p] = static_cast<float>(dot[j] * save_invstd[j]);
    grad_bias[p] = static_cast<float>(sum_g[j]);
  }
  if (grad_x == nullptr) return;
  // grad_x = (g - mean(g) - (x - mean) * invstd² * mean(g · (x - mean))) * invstd * weight
  // In place of the sums: sum_g -> mean(g), dot -> the projection factor.
  std::vector<double>& scale = w.c;
  std::vector<double>& mean_g = w.a;
  std::vector<double>& proj = w.b;
  for (int64_t j = 0; j < J; ++j) {
    const double invstd = save_invstd[j];
    scale[j] = invstd * weight[ParamAt(s, j)];
    mean_g[j] = sum_g[j] / static_cast<double>(n);
    proj[j] = dot[j] * invstd * invstd / static_cast<double>(n);
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* g = grad_y + r * J;
    const float* row = x + r * J;
    float* out = grad_x + r * J;
    for (int64_t j = 0; j < J; ++j) {
      out[j] =
          static_cast<float>((g[j] - mean_g[j] - (row[j] - save_mean[j]) * proj[j]) * scale[j]);
    }
  }
}

}  // namespace qsweep
