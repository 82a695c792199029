// `qsweep plot SWEEP`: accuracy or loss curves of every trial, drawn by gnuplot.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/plot.h"
#include "client/service_cli_internal.h"

namespace qsweep::service_cli_internal {
namespace {

// Short label of a trial: "batch_size=64 learning_rate=0.001".
std::string TrialLabel(const v1::Job& j) {
  const json trial = json::parse(j.trial_json(), nullptr, false);
  std::string label;
  if (trial.is_object())
    for (const auto& [k, v] : trial.items())
      absl::StrAppend(&label, label.empty() ? "" : " ", k, "=", ValueText(v));
  return label.empty() ? j.id() : label;
}

}  // namespace

// Draws `metric` against step (or epoch) for every job that logged it, with
// gnuplot; the terminal follows the output's extension (.svg or .png).
int Plot(Common& c, const std::string& sweep_id, const std::string& metric, const std::string& x,
         const std::string& out_path) {
  const std::string ext = fs::path(out_path).extension().string();
  if (ext != ".svg" && ext != ".png") {
    *c.err << "qsweep: -o must end in .svg or .png, got '" << out_path << "'\n";
    return 2;
  }
  grpc::Status status;
  auto jobs = FetchJobs(c, sweep_id, "index", true, v1::JOB_STATE_UNSPECIFIED, status);
  if (!jobs.ok()) return RpcError(c, status);
  auto stub = Stub(c);
  std::vector<PlotSeries> series;
  for (const auto& j : *jobs) {
    v1::GetMetricsRequest req;
    req.set_job_id(j.id());
    req.set_name(metric);
    v1::GetMetricsResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status s = stub->GetMetrics(&ctx, req, &resp);
    if (!s.ok()) return RpcError(c, s);
    if (resp.metrics_size() == 0) continue;
    PlotSeries one;
    one.label = TrialLabel(j);
    for (const auto& m : resp.metrics())
      one.points.emplace_back(static_cast<double>(x == "epoch" ? m.epoch() : m.step()), m.value());
    series.push_back(std::move(one));
  }
  if (series.empty()) {
    *c.err << "qsweep: no job of sweep " << sweep_id << " logged metric '" << metric
           << "' (epoch metrics end in _epoch, e.g. val_acc_epoch)\n";
    return 1;
  }
  PlotOptions options;
  options.output = out_path;
  options.metric = metric;
  options.title = absl::StrCat(sweep_id, ": ", metric);
  options.xlabel = x;
  if (absl::Status drawn = DrawPlot(series, options); !drawn.ok()) {
    *c.err << "qsweep: " << drawn.message() << "\n";
    return 1;
  }
  const size_t block = series.size();
  *c.out << "wrote " << out_path << " (" << block << " curves of " << metric << ")\n";
  return 0;
}

}  // namespace qsweep::service_cli_internal
