#include "worker/core/torch/adam.h"

#include <cmath>

namespace qsweep {

void AdamStep(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
              const AdamStepOptions& o) {
  const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(o.step));
  const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(o.step));
  const float b1 = static_cast<float>(o.beta1), one_minus_b1 = static_cast<float>(1 - o.beta1);
  const float b2 = static_cast<float>(o.beta2), one_minus_b2 = static_cast<float>(1 - o.beta2);
  const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  const float eps = static_cast<float>(o.eps);
  const float step_size = static_cast<float>(-o.lr / bc1);
  const bool decay = o.decoupled && o.weight_decay != 0;
  const bool l2 = !o.decoupled && o.weight_decay != 0;
  const float decay_factor = static_cast<float>(1 - o.lr * o.weight_decay);
  const float wd = static_cast<float>(o.weight_decay);
  for (int64_t i = 0; i < n; ++i) {
    float p = param[i];
    float g = grad[i];
    if (decay) p *= decay_factor;
    if (l2) g += wd * p;
    const float m = exp_avg[i] * b1 + g * one_minus_b1;
    const float v = exp_avg_sq[i] * b2 + g * g * one_minus_b2;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p + step_size * m / (std::sqrt(v) / sqrt_bc2 + eps);
  }
}

}  // namespace qsweep
