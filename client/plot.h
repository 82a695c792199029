// Metric curves drawn with gnuplot: one line per trial or run, a metric
// against the global step, as PNG or SVG (chosen by the output's extension).
// Used by `qsweep plot` for local runs (metrics.csv files) and for sweeps.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qsweep {

struct PlotSeries {
  std::string label;                              // legend entry, e.g. "bs=64 lr=1e-3"
  std::vector<std::pair<double, double>> points;  // (step, value), any order
};

struct PlotOptions {
  std::string output;  // required: FILE.png or FILE.svg
  std::string metric;  // y label, e.g. "val_acc_epoch"
  std::string title;   // Default: metric
  std::string xlabel = "step";  // Default: "step"
  std::string gnuplot = "gnuplot";  // Default: gnuplot on PATH
};

// Writes the plot. INVALID_ARGUMENT for an unsupported extension or no data;
// FAILED_PRECONDITION when gnuplot is missing or fails.
absl::Status DrawPlot(const std::vector<PlotSeries>& series, const PlotOptions& options);

// Reads the points of `metric` from a metrics.csv written by `qsweep train`
// (columns name,step,epoch,value). NOT_FOUND for a missing file,
// INVALID_ARGUMENT naming the line for a malformed one.
absl::StatusOr<PlotSeries> ReadMetricsCsv(const std::string& path, const std::string& metric);

// `qsweep plot RUN... --metric M -o FILE`: RUN is a metrics.csv file or a
// project folder containing software/metrics.csv. Returns the exit code.
int RunLocalPlotCommand(const std::vector<std::string>& args);

}  // namespace qsweep
