// Terminal progress for local training: a redrawn bar with loss/accuracy on a
// terminal, plain log lines otherwise. Torch-free.
#pragma once

#include <cstdio>
#include <string>

#include "worker/core/torch/trainer.h"

namespace qsweep {

class ProgressPrinter : public TrainCallback {
 public:
  // The bar goes to `bar_out` (redrawn only when `interactive`, e.g. isatty),
  // one summary line per epoch to `log_out`. Neither is owned.
  ProgressPrinter(FILE* bar_out, FILE* log_out, bool interactive);

  void OnMetric(const MetricPoint& metric) override;
  void OnProgress(const TrainProgress& progress) override;
  // Ends the current bar line, if any.
  void Finish();

 private:
  FILE* out_;
  FILE* log_;
  bool interactive_;
  bool bar_open_ = false;
  double last_draw_ = -1.0;
  int64_t last_epoch_logged_ = -1;
  int64_t metrics_epoch_ = -1;
  int seen_ = 0;  // bit set of the epoch metrics received for metrics_epoch_
  TrainProgress last_{};
  double val_loss_ = -1, val_acc_ = -1, test_loss_ = -1, test_acc_ = -1;
};

// "1:02:03" / "02:03".
std::string FormatDuration(double seconds);

}  // namespace qsweep
