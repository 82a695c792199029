// `qsweep plot SWEEP`: accuracy or loss curves of every trial, drawn by gnuplot.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  std::string data, plots;
  int block = 0;
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
    // Inline data: each plotted '-' reads one block ended by "e".
    for (const auto& m : resp.metrics())
      absl::StrAppendFormat(&data, "%d %.9g\n", x == "epoch" ? m.epoch() : m.step(), m.value());
    data += "e\n";
    std::string title = TrialLabel(j);
    std::replace(title.begin(), title.end(), '\'', ' ');
    absl::StrAppend(&plots, block ? ", " : "", "'-' using 1:2 with linespoints title '", title,
                    "'");
    ++block;
  }
  if (block == 0) {
    *c.err << "qsweep: no job of sweep " << sweep_id << " logged metric '" << metric
           << "' (epoch metrics end in _epoch, e.g. val_acc_epoch)\n";
    return 1;
  }
  std::string script = absl::StrCat(
      ext == ".svg" ? "set terminal svg size 960,600 dynamic\n" : "set terminal png size 960,600\n",
      "set termoption noenhanced\nset output '", out_path, "'\nset title '", sweep_id, ": ", metric,
      "'\nset xlabel '", x, "'\nset ylabel '", metric, "'\nset key outside right\nset grid\nplot ",
      plots, "\n");
  std::FILE* gp = popen("gnuplot 2>&1", "w");
  if (!gp) {
    *c.err << "qsweep: cannot run gnuplot (apt install gnuplot-nox)\n";
    return 1;
  }
  std::fputs((script + data).c_str(), gp);
  const int rc = pclose(gp);
  if (rc != 0 || !fs::exists(out_path)) {
    *c.err << "qsweep: gnuplot failed to write '" << out_path << "'\n";
    return 1;
  }
  *c.out << "wrote " << out_path << " (" << block << " curves of " << metric << ")\n";
  return 0;
}

}  // namespace qsweep::service_cli_internal
