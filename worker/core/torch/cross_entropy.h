// Softmax cross-entropy over a handful of classes (JSC has five), for K
// trials at once: the loss of the training step and the metrics of
// evaluation. Generic tensor ops spend most of their time on dispatch and on
// reductions along a 5-wide dimension; these loops read each row once.
//
// Logits are float, contiguous, laid out [rows, K, classes] (row, trial,
// class: the packed engine's layout; K = 1 for a single network). Labels are
// int64. Every trial's values are computed from its own logits only,
// in the same order whatever K is, so results do not depend on packing.
// Torch-free: the callers pass raw pointers of CPU tensors.
#ifndef QSWEEP_WORKER_CORE_TORCH_CROSS_ENTROPY_H_
#define QSWEEP_WORKER_CORE_TORCH_CROSS_ENTROPY_H_

#include <cstdint>
#include <vector>

#include "worker/core/torch/trainer.h"

namespace qsweep {

// The training step's loss and logit gradient; labels [rows, K] (each trial
// draws its own batch). For each trial k:
//   picked_sum[k] = sum over rows, in row order, in float, of log_softmax(row)[label]
//   (the negated summed loss), and
//   grad[r, k, c] = exp(log_softmax(row)[c]) * scale - (c == label ? scale : 0),
// the arithmetic of autograd's log_softmax + nll_loss backward for a loss
// scaled by `scale`. Either output may be null (not computed). Returns false,
// writing nothing, when a label is outside [0, classes).
bool CrossEntropyStep(const float* logits, const int64_t* labels, int64_t rows, int64_t trials,
                      int64_t classes, float scale, float* grad, float* picked_sum);

// MASE's evaluation metrics for K trials on the same rows (labels [rows]),
// fed block by block: loss = the mean
// over consecutive batches of `batch_size` rows of each batch's mean loss,
// accuracy = the share of rows whose first largest logit (a NaN counts as the
// largest, as argmax) is the label. Blocks must start on a batch boundary;
// only the last may end inside a batch (that batch is a short one, as MASE's
// last batch).
class CrossEntropyMetrics {
 public:
  CrossEntropyMetrics(int64_t trials, int64_t classes, int64_t batch_size);

  // False when a label is outside [0, classes) (the block is then ignored).
  bool Add(const float* logits, const int64_t* labels, int64_t rows);

  EvalResult Result(int64_t trial) const;

 private:
  int64_t trials_, classes_, batch_size_;
  int64_t rows_ = 0, batches_ = 0;
  std::vector<double> loss_sum_;   // sum of batch means, per trial
  std::vector<int64_t> hits_;      // per trial
  std::vector<double> batch_sum_;  // per trial, the open batch's losses
};

}  // namespace qsweep

#endif  // QSWEEP_WORKER_CORE_TORCH_CROSS_ENTROPY_H_
