#include "worker/local/progress.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace qsweep {

ProgressPrinter::ProgressPrinter(FILE* bar_out, FILE* log_out, bool interactive)
    : out_(bar_out), log_(log_out), interactive_(interactive) {}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

void ProgressPrinter::OnMetric(const MetricPoint& m) {
  if (m.epoch != metrics_epoch_) {
    metrics_epoch_ = m.epoch;
    seen_ = 0;
  }
  if (m.name == "val_loss_epoch") val_loss_ = m.value, seen_ |= 1;
  if (m.name == "val_acc_epoch") val_acc_ = m.value, seen_ |= 2;
  if (m.name == "test_loss_epoch") test_loss_ = m.value, seen_ |= 4;
  if (m.name == "test_acc_epoch") test_acc_ = m.value, seen_ |= 8;
  // One summary line per epoch, once its four epoch metrics are in.
  if (seen_ == 15 && m.epoch != last_epoch_logged_) {
    Finish();
    std::fprintf(log_,
                 "INFO     Epoch %lld: val_loss_epoch=%.4f val_acc_epoch=%.4f "
                 "test_loss_epoch=%.4f test_acc_epoch=%.4f\n",
                 static_cast<long long>(m.epoch), val_loss_, val_acc_, test_loss_, test_acc_);
    std::fflush(log_);
    last_epoch_logged_ = m.epoch;
  }
}

void ProgressPrinter::OnProgress(const TrainProgress& p) {
  last_ = p;
  if (!interactive_) return;
  bool last_batch = p.batch_in_epoch == p.batches_per_epoch;
  if (!last_batch && p.elapsed_seconds - last_draw_ < 0.1) return;
  last_draw_ = p.elapsed_seconds;
  const int width = 24;
  double frac = p.batches_per_epoch > 0
                    ? static_cast<double>(p.batch_in_epoch) / static_cast<double>(p.batches_per_epoch)
                    : 0.0;
  int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  double total = static_cast<double>(p.max_epochs * p.batches_per_epoch);
  double done = static_cast<double>(p.epoch * p.batches_per_epoch + p.batch_in_epoch);
  double eta = done > 0 ? p.elapsed_seconds * (total - done) / done : -1;
  std::string val = p.val_acc >= 0 ? absl::StrFormat(" val_acc_epoch=%.3f", p.val_acc) : "";
  std::fprintf(out_, "\rEpoch %lld/%lld [%s] %lld/%lld train_loss=%.3f train_acc_step=%.3f%s ETA %s ",
               static_cast<long long>(p.epoch), static_cast<long long>(p.max_epochs - 1),
               bar.c_str(), static_cast<long long>(p.batch_in_epoch),
               static_cast<long long>(p.batches_per_epoch), p.train_loss, p.train_acc, val.c_str(),
               FormatDuration(eta).c_str());
  std::fflush(out_);
  bar_open_ = true;
}

void ProgressPrinter::Finish() {
  if (bar_open_) {
    std::fputc('\n', out_);
    bar_open_ = false;
  }
}

}  // namespace qsweep
