#include "worker/core/torch/cross_entropy.h"

#include <cmath>
#include <limits>

namespace qsweep {
namespace {

// The largest logit of a row and the index of its first occurrence; a NaN
// counts as larger than any number (argmax's rule), the first NaN wins.
struct RowMax {
  float value;
  int64_t index;
};

inline RowMax MaxOf(const float* p, int64_t classes) {
  RowMax m{p[0], 0};
  if (std::isnan(m.value)) return m;
  for (int64_t c = 1; c < classes; ++c) {
    if (std::isnan(p[c])) return {p[c], c};
    if (p[c] > m.value) m = {p[c], c};
  }
  return m;
}

// log(sum over classes of exp(p - max)): log_softmax(p)[c] = p[c] - max - this.
inline float LogSumExpShifted(const float* p, int64_t classes, float max) {
  float s = 0;
  for (int64_t c = 0; c < classes; ++c) s += std::exp(p[c] - max);
  return std::log(s);
}

bool LabelsValid(const int64_t* labels, int64_t rows, int64_t classes) {
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] < 0 || labels[r] >= classes) return false;
  }
  return true;
}

}  // namespace

bool CrossEntropyStep(const float* logits, const int64_t* labels, int64_t rows, int64_t trials,
                      int64_t classes, float scale, float* grad, float* picked_sum) {
  if (!LabelsValid(labels, rows * trials, classes)) return false;
  if (picked_sum != nullptr) {
    for (int64_t k = 0; k < trials; ++k) picked_sum[k] = 0;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < trials; ++k) {
      const int64_t label = labels[r * trials + k];
      const int64_t at = (r * trials + k) * classes;
      const float* p = logits + at;
      const float max = MaxOf(p, classes).value;
      const float lse = LogSumExpShifted(p, classes, max);
      if (grad != nullptr) {
        float* g = grad + at;
        for (int64_t c = 0; c < classes; ++c) g[c] = std::exp(p[c] - max - lse) * scale;
        g[label] += -scale;
      }
      if (picked_sum != nullptr) picked_sum[k] += p[label] - max - lse;
    }
  }
  return true;
}

CrossEntropyMetrics::CrossEntropyMetrics(int64_t trials, int64_t classes, int64_t batch_size)
    : trials_(trials),
      classes_(classes),
      batch_size_(batch_size),
      loss_sum_(trials, 0.0),
      hits_(trials, 0),
      batch_sum_(trials, 0.0) {}

bool CrossEntropyMetrics::Add(const float* logits, const int64_t* labels, int64_t rows) {
  if (!LabelsValid(labels, rows, classes_)) return false;
  int64_t in_batch = 0;
  auto close_batch = [&] {
    for (int64_t k = 0; k < trials_; ++k) {
      loss_sum_[k] += batch_sum_[k] / static_cast<double>(in_batch);
      batch_sum_[k] = 0;
    }
    ++batches_;
    in_batch = 0;
  };
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t label = labels[r];
    for (int64_t k = 0; k < trials_; ++k) {
      const float* p = logits + (r * trials_ + k) * classes_;
      const RowMax m = MaxOf(p, classes_);
      const float lse = LogSumExpShifted(p, classes_, m.value);
      batch_sum_[k] -= static_cast<double>(p[label] - m.value - lse);
      hits_[k] += m.index == label;
    }
    if (++in_batch == batch_size_) close_batch();
  }
  if (in_batch > 0) close_batch();  // the short last batch
  rows_ += rows;
  return true;
}

EvalResult CrossEntropyMetrics::Result(int64_t trial) const {
  EvalResult r;
  r.rows = rows_;
  r.loss = batches_ ? loss_sum_[trial] / static_cast<double>(batches_)
                    : std::numeric_limits<double>::quiet_NaN();
  r.accuracy = rows_ ? static_cast<double>(hits_[trial]) / static_cast<double>(rows_)
                     : std::numeric_limits<double>::quiet_NaN();
  return r;
}

}  // namespace qsweep
