#include "client/service_cli.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/inline_model.h"
#include "client/service_cli_internal.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "common/table.h"
#include "common/terminal_text.h"
#include "qsweep/v1/experiments.grpc.pb.h"

namespace qsweep {
namespace {

using namespace service_cli_internal;  // NOLINT: this file's own helpers

json SummaryJson(const v1::SweepSummary& s) {
  return {{"id", s.sweep().id()},
          {"name", s.sweep().name()},
          {"jobs", s.sweep().num_jobs()},
          {"pending", s.pending()},
          {"leased", s.leased()},
          {"running", s.running()},
          {"succeeded", s.succeeded()},
          {"failed", s.failed()},
          {"cancelled", s.cancelled()},
          {"priority", s.sweep().priority()},
          {"max_concurrency", s.sweep().max_concurrency()},
          {"created", TimeText(s.sweep().created_unix_ms())}};
}

json JobJson(const v1::Job& j) {
  json metrics = json::object();
  std::map<std::string, double> sorted(j.final_metrics().begin(), j.final_metrics().end());
  for (const auto& [k, v] : sorted) metrics[k] = v;
  json o = {{"id", j.id()},
            {"sweep_id", j.sweep_id()},
            {"index", j.index()},
            {"kind", j.kind() == v1::TRANSFORM ? "TRANSFORM" : "TRAIN"},
            {"state", StateName(j.state())},
            {"trial", json::parse(j.trial_json().empty() ? "{}" : j.trial_json(), nullptr, false)},
            {"final_metrics", metrics},
            {"attempt", j.attempt()},
            {"max_attempts", j.max_attempts()},
            {"worker_id", j.worker_id()},
            {"error", j.error()},
            {"best_checkpoint_sha256", j.best_checkpoint_sha256()}};
  if (!j.config_json().empty()) o["config"] = json::parse(j.config_json(), nullptr, false);
  if (!j.result_json().empty()) o["result"] = json::parse(j.result_json(), nullptr, false);
  if (!j.depends_on().empty()) o["depends_on"] = j.depends_on();
  return o;
}

// ---- each command's own options (filled by CLI11, read by the command)
// -------------------------------------------------------------------------

struct SubmitOptions {
  std::string file;  // sweep TOML
  std::string key;   // idempotency key
  std::string name;  // sweep name ("" = [sweep].name)
  bool watch = false;
};
struct StatusOptions {
  std::string sweep;  // "" = all sweeps
};
struct WatchOptions {
  std::string sweep;
};
struct JobsOptions {
  std::string sweep;
  std::string sort = "index";
  bool asc = false;
  std::string state;  // "" = every state
};
struct ShowOptions {
  std::string job;
};
struct ReportOptions {
  std::string job;
  std::string pass = "transform";
};
struct CancelOptions {
  std::string id;  // sweep or job
};
struct RetryOptions {
  std::string id;  // sweep or job
  bool failed = false;
  bool cancelled = false;
};
struct CheckpointGetOptions {
  std::string action;  // "get"
  std::string job;
  std::string output;  // "" = JOB-NAME.pt
  std::string name = "best_state_dict";
};
struct PlotCommandOptions {
  std::string sweep;
  std::string metric = "val_acc_epoch";
  std::string x = "step";
  std::string output;
};
struct TransformSubmitOptions {
  std::string action;  // "submit"
  std::string from;    // TRAIN job
  std::string config;  // transform TOML
  int fine_tune_epochs = 0;
  bool watch = false;
};
struct UpOptions {
  std::string db;  // "" = DefaultDbPath()
  std::string listen = "127.0.0.1:7420";
  int local_workers = 2;
};

// ---- the commands
// -------------------------------------------------------------------------

int Submit(Common& c, const SubmitOptions& o,
           const std::function<int(Common&, const std::string&)>& watcher) {
  const std::string& path = o.file;
  std::ifstream f(path);
  if (!f) {
    *c.err << "qsweep: sweep file '" << path << "' cannot be opened\n";
    return 1;
  }
  std::stringstream text;
  text << f.rdbuf();
  // The service reads no files: local model files travel inline.
  auto sent = InlineModelFiles(text.str(), path);
  if (!sent.ok()) {
    *c.err << "qsweep: " << sent.status().message() << "\n";
    return absl::IsNotFound(sent.status()) ? 1 : 2;
  }
  v1::SubmitSweepRequest req;
  req.set_request_id(RequestId());
  req.set_idempotency_key(o.key);
  req.set_name(o.name);
  req.set_sweep_toml(*sent);
  req.set_source_name(fs::path(path).filename().string());
  v1::SubmitSweepResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = Stub(c)->SubmitSweep(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  if (c.format == "json") {
    *c.out << json{{"id", resp.sweep().id()},
                   {"name", resp.sweep().name()},
                   {"jobs", resp.sweep().num_jobs()},
                   {"existing", resp.existing()}}
                  .dump(2)
           << "\n";
  } else {
    *c.out << (resp.existing() ? "existing sweep " : "submitted sweep ") << resp.sweep().id()
           << " (" << resp.sweep().num_jobs() << " jobs"
           << (resp.sweep().name().empty() ? "" : ", " + resp.sweep().name()) << ")\n";
  }
  return o.watch ? watcher(c, resp.sweep().id()) : 0;
}

int Status(Common& c, const std::string& sweep_id) {
  auto stub = Stub(c);
  std::vector<v1::SweepSummary> sweeps;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s;
  if (sweep_id.empty()) {
    v1::ListSweepsRequest req;
    do {  // the server answers in pages: follow them
      v1::ListSweepsResponse resp;
      grpc::ClientContext page_ctx;
      Deadline(page_ctx);
      s = stub->ListSweeps(&page_ctx, req, &resp);
      if (!s.ok()) break;
      for (auto& w : *resp.mutable_sweeps()) sweeps.push_back(std::move(w));
      req.set_page_token(resp.next_page_token());
    } while (!req.page_token().empty());
  } else {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep_id);
    v1::SweepSummary one;
    s = stub->GetSweep(&ctx, req, &one);
    sweeps.push_back(one);
  }
  if (!s.ok()) return RpcError(c, s);
  if (c.format == "json") {
    json arr = json::array();
    for (const auto& w : sweeps) arr.push_back(SummaryJson(w));
    *c.out << (sweep_id.empty() ? arr : arr[0]).dump(2) << "\n";
    return 0;
  }
  Table t;
  t.headers = {"sweep",     "name",   "jobs",      "pending", "running",
               "succeeded", "failed", "cancelled", "created"};
  for (const auto& w : sweeps)
    t.rows.push_back({w.sweep().id(), w.sweep().name(), std::to_string(w.sweep().num_jobs()),
                      std::to_string(w.pending()), std::to_string(w.running() + w.leased()),
                      std::to_string(w.succeeded()), std::to_string(w.failed()),
                      std::to_string(w.cancelled()), TimeText(w.sweep().created_unix_ms())});
  PrintTable(c, t);
  return 0;
}

// What a watch knows: the latest summary, and the latest copy of each job
// (events carry only the jobs that changed).
struct WatchState {
  v1::SweepSummary summary;
  std::map<std::string, v1::Job> jobs;
};

// Fraction of the sweep's work done, counting running jobs' epochs.
double Fraction(const WatchState& e) {
  const int total = e.summary.sweep().num_jobs();
  if (total <= 0) return 1.0;
  double done = 0;
  for (const auto& [id, j] : e.jobs) {
    if (j.state() == v1::SUCCEEDED || j.state() == v1::FAILED || j.state() == v1::CANCELLED) {
      done += 1;
    } else if (j.state() == v1::RUNNING && j.progress().max_epochs() > 0) {
      const auto& p = j.progress();
      double batches = p.batches_per_epoch() > 0
                           ? double(p.batch_in_epoch()) / double(p.batches_per_epoch())
                           : 0.0;
      done += std::min(1.0, (double(p.epoch()) + batches) / double(p.max_epochs()));
    }
  }
  return std::min(1.0, done / total);
}

std::string ProgressLine(const WatchState& e, double seconds, bool bar) {
  const auto& s = e.summary;
  const double f = Fraction(e);
  std::string line;
  if (bar) {
    const int width = 30, filled = static_cast<int>(f * width + 0.5);
    line = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  absl::StrAppendFormat(&line, "%3.0f%%  %d/%d done, %d running, %d pending, %d failed", f * 100,
                        s.succeeded() + s.failed() + s.cancelled(), s.sweep().num_jobs(),
                        s.running() + s.leased(), s.pending(), s.failed());
  if (f > 0.01 && f < 1.0) absl::StrAppendFormat(&line, ", ETA %.0fs", seconds * (1 - f) / f);
  return line;
}

int Watch(Common& c, const std::string& sweep_id) {
  grpc::ClientContext ctx;
  v1::WatchSweepRequest req;
  req.set_sweep_id(sweep_id);
  auto reader = Stub(c)->WatchSweep(&ctx, req);
  const bool tty = RawBuffer(c.out->rdbuf()) == std::cout.rdbuf() && isatty(STDOUT_FILENO);
  std::ostream raw(RawBuffer(c.out->rdbuf()));  // qsweep's own cursor control only
  const auto start = std::chrono::steady_clock::now();
  v1::WatchSweepEvent e;
  WatchState last;
  bool any = false;
  std::string last_plain;  // without a terminal, a line only when the counts change
  while (reader->Read(&e)) {
    last.summary = e.summary();
    for (auto& j : *e.mutable_jobs()) last.jobs[j.id()] = std::move(j);
    any = true;
    if (e.more_jobs()) continue;  // the rest of this update follows
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (c.format == "json")
      *c.out << SummaryJson(last.summary).dump() << "\n";
    else if (tty)
      raw << "\r" << ProgressLine(last, secs, true) << "\033[K" << std::flush;
    else if (std::string counts = ProgressLine(last, 0, false); counts != last_plain) {
      *c.out << ProgressLine(last, secs, false) << "\n" << std::flush;
      last_plain = counts;
    }
  }
  if (tty && c.format != "json") *c.out << "\n";
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(c, s);
  if (any && c.format != "json")
    *c.out << "sweep " << sweep_id << " finished: " << last.summary.succeeded() << " succeeded, "
           << last.summary.failed() << " failed, " << last.summary.cancelled() << " cancelled\n";
  return 0;
}

int Jobs(Common& c, const JobsOptions& o) {
  const std::string& sweep_id = o.sweep;
  const std::string& state_name = o.state;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  if (!state_name.empty() && !v1::JobState_Parse(state_name, &state)) {
    *c.err << "qsweep: --state is '" << state_name
           << "'; allowed: PENDING, LEASED, RUNNING, SUCCEEDED, FAILED, "
              "CANCELLED\n";
    return 2;
  }
  grpc::Status status;
  auto jobs = FetchJobs(c, sweep_id, o.sort, o.asc, state, status);
  if (!jobs.ok()) return RpcError(c, status);
  if (c.format == "json") {
    json arr = json::array();
    for (const auto& j : *jobs) arr.push_back(JobJson(j));
    *c.out << arr.dump(2) << "\n";
    return 0;
  }
  std::vector<std::string> keys;  // swept keys, in first-seen order
  for (const auto& j : *jobs) {
    const json trial = json::parse(j.trial_json(), nullptr, false);
    if (!trial.is_object()) continue;
    for (const auto& [k, v] : trial.items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  std::vector<std::string> metrics = {"test_acc_epoch", "test_loss_epoch", "val_acc_epoch",
                                      "val_loss_epoch"};
  bool transforms = false;
  for (const auto& j : *jobs) transforms |= j.kind() == v1::TRANSFORM;
  if (transforms)
    for (const char* m : {"test_acc_before", "test_acc_after_passes", "test_acc_after_finetune"})
      metrics.push_back(m);
  Table t;
  t.headers = {"job", "kind", "state"};
  t.headers.insert(t.headers.end(), keys.begin(), keys.end());
  t.headers.insert(t.headers.end(), metrics.begin(), metrics.end());
  t.headers.push_back("attempts");
  for (const auto& j : *jobs) {
    const json trial = json::parse(j.trial_json(), nullptr, false);
    std::vector<std::string> row = {std::to_string(j.index()),
                                    j.kind() == v1::TRANSFORM ? "transform" : "train",
                                    StateName(j.state())};
    for (const auto& k : keys)
      row.push_back(trial.is_object() && trial.contains(k) ? ValueText(trial[k]) : "");
    for (const auto& m : metrics) {
      auto it = j.final_metrics().find(m);
      row.push_back(it == j.final_metrics().end() ? "" : Num(it->second));
    }
    row.push_back(std::to_string(j.attempt()));
    t.rows.push_back(std::move(row));
  }
  PrintTable(c, t);
  return 0;
}

int Show(Common& c, const std::string& job_id) {
  auto stub = Stub(c);
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::GetJobResponse job;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = stub->GetJob(&ctx, req, &job);
  if (!s.ok()) return RpcError(c, s);
  v1::GetMetricsRequest mreq;
  mreq.set_job_id(job_id);
  v1::GetMetricsResponse metrics;
  grpc::ClientContext mctx;
  Deadline(mctx);
  s = stub->GetMetrics(&mctx, mreq, &metrics);
  if (!s.ok()) return RpcError(c, s);
  // Per-epoch table: epoch metrics by epoch.
  std::map<int64_t, std::map<std::string, double>> epochs;
  std::set<std::string> epoch_names;
  for (const auto& m : metrics.metrics()) {
    if (m.name().size() < 6 || m.name().substr(m.name().size() - 6) != "_epoch") continue;
    epochs[m.epoch()][m.name()] = m.value();
    epoch_names.insert(m.name());
  }
  if (c.format == "json") {
    json o = JobJson(job.job());
    json attempts = json::array(), artifacts = json::array(), per_epoch = json::array();
    for (const auto& a : job.attempts())
      attempts.push_back({{"number", a.number()},
                          {"worker_id", a.worker_id()},
                          {"state", StateName(a.state())},
                          {"resumed_from_epoch", a.resumed_from_epoch()},
                          {"error", a.error()},
                          {"started", TimeText(a.started_unix_ms())},
                          {"finished", TimeText(a.finished_unix_ms())}});
    for (const auto& a : job.artifacts())
      artifacts.push_back({{"name", a.name()},
                           {"kind", a.kind()},
                           {"sha256", a.sha256()},
                           {"size_bytes", a.size_bytes()}});
    for (const auto& [e, values] : epochs) {
      json row = {{"epoch", e}};
      for (const auto& [k, v] : values) row[k] = v;
      per_epoch.push_back(row);
    }
    o["attempts"] = attempts;
    o["artifacts"] = artifacts;
    o["epochs"] = per_epoch;
    *c.out << o.dump(2) << "\n";
    return 0;
  }
  const v1::Job& j = job.job();
  *c.out << "job " << j.id() << "  " << StateName(j.state()) << "  attempt " << j.attempt() << "/"
         << j.max_attempts() << (j.worker_id().empty() ? "" : "  worker " + j.worker_id()) << "\n";
  if (!j.error().empty()) *c.out << "error: " << j.error() << "\n";
  *c.out << "trial: " << j.trial_json() << "\n\n";
  Table config{{"key", "value"}, {}};
  const json config_json = json::parse(j.config_json(), nullptr, false);
  if (config_json.is_object())
    for (const auto& [k, v] : config_json.items())
      config.rows.push_back({k, v.is_null() ? "NA" : ValueText(v)});
  *c.out << RenderTable(config, TableStyle::kSimple) << "\n\n";
  if (!j.final_metrics().empty()) {
    Table fm{{"final metric", "value"}, {}};
    std::map<std::string, double> sorted(j.final_metrics().begin(), j.final_metrics().end());
    for (const auto& [k, v] : sorted) fm.rows.push_back({k, Num(v)});
    *c.out << RenderTable(fm, TableStyle::kSimple) << "\n\n";
  }
  if (!epochs.empty()) {
    Table pe;
    pe.headers = {"epoch"};
    pe.headers.insert(pe.headers.end(), epoch_names.begin(), epoch_names.end());
    for (const auto& [e, values] : epochs) {
      std::vector<std::string> row = {std::to_string(e)};
      for (const auto& n : epoch_names) row.push_back(values.count(n) ? Num(values.at(n)) : "");
      pe.rows.push_back(std::move(row));
    }
    *c.out << RenderTable(pe, TableStyle::kSimple) << "\n\n";
  }
  Table at{{"attempt", "worker", "state", "resumed at epoch", "started", "finished", "error"}, {}};
  for (const auto& a : job.attempts())
    at.rows.push_back({std::to_string(a.number()), a.worker_id(), StateName(a.state()),
                       a.resumed_from_epoch() > 0 ? std::to_string(a.resumed_from_epoch()) : "",
                       TimeText(a.started_unix_ms()), TimeText(a.finished_unix_ms()), a.error()});
  *c.out << RenderTable(at, TableStyle::kSimple) << "\n";
  if (job.artifacts_size() > 0) {
    Table ar{{"artifact", "kind", "bytes", "sha256"}, {}};
    for (const auto& a : job.artifacts())
      ar.rows.push_back({a.name(), a.kind(), std::to_string(a.size_bytes()), a.sha256()});
    *c.out << "\n" << RenderTable(ar, TableStyle::kSimple) << "\n";
  }
  return 0;
}

bool IsSweepId(const std::string& id) {
  return id.rfind("sw-", 0) == 0 && id.find('-', 3) == std::string::npos;
}

int Cancel(Common& c, const std::string& id) {
  v1::CancelResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s;
  if (IsSweepId(id)) {
    v1::CancelSweepRequest req;
    req.set_request_id(RequestId());
    req.set_sweep_id(id);
    s = Stub(c)->CancelSweep(&ctx, req, &resp);
  } else {
    v1::CancelJobRequest req;
    req.set_request_id(RequestId());
    req.set_job_id(id);
    s = Stub(c)->CancelJob(&ctx, req, &resp);
  }
  if (!s.ok()) return RpcError(c, s);
  *c.out << "cancelled " << resp.cancelled() << " job(s) (running ones stop at their next "
         << "heartbeat)\n";
  return 0;
}

int Retry(Common& c, const RetryOptions& o) {
  const std::string& id = o.id;
  const bool failed = o.failed, cancelled = o.cancelled;
  if (!failed && !cancelled) {
    *c.err << "qsweep: retry needs --failed and/or --cancelled\n";
    return 2;
  }
  v1::RetryJobsRequest req;
  req.set_request_id(RequestId());
  if (IsSweepId(id))
    req.set_sweep_id(id);
  else
    req.add_job_ids(id);
  req.set_include_cancelled(cancelled);
  v1::RetryJobsResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = Stub(c)->RetryJobs(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  *c.out << "retrying " << resp.retried() << " job(s)\n";
  return 0;
}

int CheckpointGet(Common& c, const CheckpointGetOptions& o) {
  const std::string& job_id = o.job;
  const std::string& name = o.name;
  std::string out_path = o.output;
  if (out_path.empty()) out_path = job_id + "-" + name + ".pt";
  // The hash to trust comes from the job record, not from the download.
  v1::GetJobRequest jreq;
  jreq.set_job_id(job_id);
  v1::GetJobResponse job;
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status s = Stub(c)->GetJob(&ctx, jreq, &job);
    if (!s.ok()) return RpcError(c, s);
  }
  auto recorded = job.job().artifact_sha256().find(name);
  if (recorded == job.job().artifact_sha256().end()) {
    *c.err << "qsweep: job " << job_id << " records no artifact '" << name
           << "' (it has not succeeded, or it has no such output); nothing "
              "downloaded\n";
    return 1;
  }
  v1::DownloadArtifactRequest req;
  req.set_job_id(job_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  Deadline(ctx, 300);
  auto reader = Stub(c)->DownloadArtifact(&ctx, req);
  std::string bytes;
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) {
    if (static_cast<int64_t>(bytes.size() + chunk.data().size()) > kMaxArtifactBytes) {
      ctx.TryCancel();
      (void)reader->Finish();  // ends the call; its status is CANCELLED
      *c.err << "qsweep: artifact '" << name << "' of job " << job_id << " is larger than "
             << kMaxArtifactBytes << " bytes; not written\n";
      return 1;
    }
    bytes += chunk.data();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(c, s);
  const std::string actual = Sha256Hex(bytes);
  if (actual != recorded->second) {
    *c.err << "qsweep: the download of " << job_id << " '" << name << "' hashes to " << actual
           << " but the job records " << recorded->second << "; refusing to write it\n";
    return 1;
  }
  std::ofstream f(out_path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    *c.err << "qsweep: cannot write '" << out_path << "'\n";
    return 1;
  }
  *c.out << "wrote " << out_path << " (" << bytes.size() << " bytes, sha256 " << actual
         << " verified)\n";
  return 0;
}

int TransformSubmit(Common& c, const TransformSubmitOptions& o) {
  const std::string& path = o.config;
  std::ifstream f(path);
  if (!f) {
    *c.err << "qsweep: transform config '" << path << "' cannot be opened\n";
    return 1;
  }
  std::stringstream text;
  text << f.rdbuf();
  auto sent = InlineModelFiles(text.str(), path);  // the service reads no files
  if (!sent.ok()) {
    *c.err << "qsweep: " << sent.status().message() << "\n";
    return absl::IsNotFound(sent.status()) ? 1 : 2;
  }
  v1::SubmitTransformRequest req;
  req.set_request_id(RequestId());
  req.set_from_job_id(o.from);
  req.set_config_toml(*sent);
  req.set_source_name(fs::path(path).filename().string());
  req.set_fine_tune_epochs(o.fine_tune_epochs);
  v1::SubmitTransformResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = Stub(c)->SubmitTransform(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  if (c.format == "json")
    *c.out << json{{"sweep_id", resp.sweep().id()}, {"job_id", resp.job().id()}}.dump(2) << "\n";
  else
    *c.out << "submitted transform job " << resp.job().id() << " (sweep " << resp.sweep().id()
           << ") on the best checkpoint of " << o.from << "\n";
  return o.watch ? Watch(c, resp.sweep().id()) : 0;
}

int Report(Common& c, const std::string& job_id, const std::string& pass) {
  v1::GetReportRequest req;
  req.set_job_id(job_id);
  req.set_pass_name(pass);
  v1::Report resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = Stub(c)->GetReport(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  *c.out << (c.format == "json" ? resp.json() : resp.text()) << "\n";
  return 0;
}

int Workers(Common& c) {
  v1::ListWorkersResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = Stub(c)->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
  if (!s.ok()) return RpcError(c, s);
  // A worker with one device per slot (--gpus auto) shows them all.
  auto devices = [](const v1::WorkerInfo& w) {
    if (w.devices().empty()) return w.device();
    std::string all;
    for (const auto& d : w.devices()) all += (all.empty() ? "" : ",") + d;
    return all;
  };
  if (c.format == "json") {
    json arr = json::array();
    for (const auto& w : resp.workers())
      arr.push_back({{"id", w.id()},
                     {"name", w.name()},
                     {"device", devices(w)},
                     {"slots", w.slots()},
                     {"busy", w.busy_slots()},
                     {"last_seen", TimeText(w.last_seen_unix_ms())}});
    *c.out << arr.dump(2) << "\n";
    return 0;
  }
  Table t{{"worker", "name", "device", "slots", "busy", "last seen"}, {}};
  for (const auto& w : resp.workers())
    t.rows.push_back({w.id(), w.name(), devices(w), std::to_string(w.slots()),
                      std::to_string(w.busy_slots()), TimeText(w.last_seen_unix_ms())});
  PrintTable(c, t);
  return 0;
}

// $QSWEEP_SERVER_BIN, next to this program (or ../server/ in a build tree), or
// PATH.
std::string FindServerBinary() {
  if (const char* env = std::getenv("QSWEEP_SERVER_BIN"); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const fs::path& p : {self.parent_path() / "qsweep-server",
                              self.parent_path().parent_path() / "server" / "qsweep-server"})
      if (fs::exists(p, ec)) return p.string();
  return "qsweep-server";
}

std::string DefaultDbPath() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  fs::path dir = xdg && *xdg ? fs::path(xdg) / "qsweep"
                             : fs::path(home ? home : ".") / ".local" / "share" / "qsweep";
  std::error_code ec;
  fs::create_directories(dir, ec);
  return (dir / "qsweep.db").string();
}

int Up(Common& c, const UpOptions& o) {
  const std::string db = o.db.empty() ? DefaultDbPath() : o.db;
  const std::string& listen = o.listen;
  const int workers = o.local_workers;
  const std::string bin = FindServerBinary();
  std::vector<std::string> args = {
      bin, "--listen", listen, "--db", db, "--local-workers", std::to_string(workers)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  *c.out << "qsweep up: " << bin << " on " << listen << ", database " << db << ", " << workers
         << " local worker(s)" << std::endl;
  execvp(bin.c_str(), argv.data());
  *c.err << "qsweep: cannot run " << bin << ": " << std::strerror(errno)
         << " (set QSWEEP_SERVER_BIN to its path)\n";
  return 1;
}

// ---- command lines: each command adds its own options to `app` and returns
// what runs it once they are parsed (its options live as long as that).
// -------------------------------------------------------------------------

using Runner = std::function<int()>;

Runner AddSubmit(CLI::App& app, Common& c) {
  auto o = std::make_shared<SubmitOptions>();
  app.add_option("file", o->file, "sweep TOML file")->required();
  app.add_option("--key", o->key, "idempotency key: the same key submits once");
  app.add_option("--name", o->name, "sweep name (default: [sweep].name)");
  app.add_flag("--watch", o->watch, "watch the sweep after submitting");
  return [&c, o] { return Submit(c, *o, Watch); };
}

Runner AddStatus(CLI::App& app, Common& c) {
  auto o = std::make_shared<StatusOptions>();
  app.add_option("sweep", o->sweep, "sweep id (default: all sweeps)");
  return [&c, o] { return Status(c, o->sweep); };
}

Runner AddWatch(CLI::App& app, Common& c) {
  auto o = std::make_shared<WatchOptions>();
  app.add_option("sweep", o->sweep, "sweep id")->required();
  return [&c, o] { return Watch(c, o->sweep); };
}

Runner AddJobs(CLI::App& app, Common& c) {
  auto o = std::make_shared<JobsOptions>();
  app.add_option("sweep", o->sweep, "sweep id")->required();
  app.add_option("--sort", o->sort, "index, state, or a final metric (e.g. test_acc_epoch)");
  app.add_flag("--asc", o->asc, "ascending metric order (default: best first, descending)");
  app.add_option("--state", o->state, "only jobs in this state");
  return [&c, o] { return Jobs(c, *o); };
}

Runner AddShow(CLI::App& app, Common& c) {
  auto o = std::make_shared<ShowOptions>();
  app.add_option("job", o->job, "job id")->required();
  return [&c, o] { return Show(c, o->job); };
}

Runner AddReport(CLI::App& app, Common& c) {
  auto o = std::make_shared<ReportOptions>();
  app.add_option("job", o->job, "job id")->required();
  app.add_option("--pass", o->pass, "report name (transform jobs store \"transform\")")
      ->capture_default_str();
  return [&c, o] { return Report(c, o->job, o->pass); };
}

Runner AddCancel(CLI::App& app, Common& c) {
  auto o = std::make_shared<CancelOptions>();
  app.add_option("id", o->id, "sweep or job id")->required();
  return [&c, o] { return Cancel(c, o->id); };
}

Runner AddRetry(CLI::App& app, Common& c) {
  auto o = std::make_shared<RetryOptions>();
  app.add_option("id", o->id, "sweep or job id")->required();
  app.add_flag("--failed", o->failed, "retry FAILED jobs");
  app.add_flag("--cancelled", o->cancelled, "retry CANCELLED jobs too");
  return [&c, o] { return Retry(c, *o); };
}

Runner AddCheckpoint(CLI::App& app, Common& c) {
  auto o = std::make_shared<CheckpointGetOptions>();
  app.add_option("action", o->action, "get")->required()->check(CLI::IsMember({"get"}));
  app.add_option("job", o->job, "job id")->required();
  app.add_option("-o,--output", o->output, "output file (default: JOB-NAME.pt)");
  app.add_option("--name", o->name, "best_state_dict (for torch.load), best or last")
      ->capture_default_str();
  return [&c, o] { return CheckpointGet(c, *o); };
}

Runner AddPlot(CLI::App& app, Common& c) {
  auto o = std::make_shared<PlotCommandOptions>();
  app.add_option("sweep", o->sweep, "sweep id")->required();
  app.add_option("--metric", o->metric, "metric name")->capture_default_str();
  app.add_option("--x", o->x, "step or epoch")
      ->check(CLI::IsMember({"step", "epoch"}))
      ->capture_default_str();
  app.add_option("-o,--output", o->output, "curves.svg or curves.png")->required();
  return [&c, o] { return Plot(c, o->sweep, o->metric, o->x, o->output); };
}

Runner AddTransform(CLI::App& app, Common& c) {
  auto o = std::make_shared<TransformSubmitOptions>();
  app.add_option("action", o->action, "submit")->required()->check(CLI::IsMember({"submit"}));
  app.add_option("--from", o->from, "TRAIN job whose best checkpoint to transform")->required();
  app.add_option("--config", o->config, "transform config ([passes.*] tables)")->required();
  app.add_option("--fine-tune-epochs", o->fine_tune_epochs, "quantization-aware fine-tuning epochs")
      ->check(CLI::Range(0, 1000));
  app.add_flag("--watch", o->watch, "watch the transform job");
  return [&c, o] { return TransformSubmit(c, *o); };
}

Runner AddWorkers(CLI::App&, Common& c) {
  return [&c] { return Workers(c); };
}

Runner AddToken(CLI::App& app, Common& c) {
  auto o = std::make_shared<TokenArgs>();
  app.add_option("action", o->action, "create, list or revoke")
      ->required()
      ->check(CLI::IsMember({"create", "list", "revoke"}));
  app.add_option("id", o->id, "token id (revoke)");
  app.add_option("--role", o->role, "create: user, worker or admin")
      ->check(CLI::IsMember({"user", "worker", "admin"}))
      ->capture_default_str();
  app.add_option("--owner", o->owner, "create: the user it acts for (default: yourself)");
  app.add_option("--name", o->name, "create: a label shown by `qsweep token list`");
  app.add_option("--expires", o->expires, "create: lifetime such as 30d, 12h, or never")
      ->capture_default_str();
  app.add_option("-o,--output", o->output,
                 "create: write the token to this file (mode 0600) instead of stdout");
  app.add_flag("--all", o->all, "list: include revoked tokens");
  return [&c, o] {
    if (o->action == "revoke" && o->id.empty()) {
      *c.err << "qsweep token revoke: the token id is required\n";
      return 2;
    }
    return Token(c, *o);
  };
}

Runner AddUp(CLI::App& app, Common& c) {
  auto o = std::make_shared<UpOptions>();
  app.add_option("--db", o->db, "SQLite file (default: ~/.local/share/qsweep/qsweep.db)");
  app.add_option("--listen", o->listen, "address to serve on")->capture_default_str();
  app.add_option("--local-workers", o->local_workers, "local CPU workers")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  return [&c, o] { return Up(c, *o); };
}

// The command's options added to `app`, and what runs it; empty for an
// unknown command.
Runner AddCommand(const std::string& command, CLI::App& app, Common& c) {
  static const std::map<std::string, Runner (*)(CLI::App&, Common&)> kAdders = {
      {"submit", AddSubmit},
      {"status", AddStatus},
      {"watch", AddWatch},
      {"jobs", AddJobs},
      {"show", AddShow},
      {"report", AddReport},
      {"cancel", AddCancel},
      {"retry", AddRetry},
      {"checkpoint", AddCheckpoint},
      {"plot", AddPlot},
      {"transform", AddTransform},
      {"workers", AddWorkers},
      {"token", AddToken},
      {"up", AddUp}};
  auto it = kAdders.find(command);
  return it == kAdders.end() ? Runner() : it->second(app, c);
}

const std::vector<std::string>& Commands() {
  static const std::vector<std::string> kCommands = {"submit",     "status",  "watch",  "jobs",
                                                     "show",       "report",  "cancel", "retry",
                                                     "checkpoint", "workers", "up",     "token"};
  return kCommands;
}

}  // namespace

bool IsServiceCommand(const std::string& command, const std::vector<std::string>& args) {
  if (command == "transform") return !args.empty() && args[0] == "submit";
  return IsServiceCommand(command);
}

bool IsServiceCommand(const std::string& command) {
  const auto& all = Commands();
  return std::find(all.begin(), all.end(), command) != all.end();
}

int RunServiceCommand(const std::string& command, const std::vector<std::string>& args,
                      std::ostream& out, std::ostream& err) {
  Common c;
  c.out = &out;
  c.err = &err;
  const char* env = std::getenv("QSWEEP_SERVER");
  c.server = env && *env ? env : "127.0.0.1:7420";
  CLI::App app{"qsweep " + command, "qsweep " + command};
  app.add_option("--server", c.server, "qsweep-server address host:port");
  app.add_option("--format", c.format, "output format")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  const char* ca_env = std::getenv("QSWEEP_TLS_CA");
  c.tls_ca = ca_env ? ca_env : "";
  app.add_option("--token-file", c.token_file,
                 "file holding your token, mode 0600 (default: $QSWEEP_TOKEN_FILE, else "
                 "~/.config/qsweep/token)");
  app.add_option("--tls-ca", c.tls_ca,
                 "PEM CA of the server's certificate: connect over TLS "
                 "(default: $QSWEEP_TLS_CA)");
  app.add_option("--tls-cert", c.tls_cert, "PEM client certificate (servers with mutual TLS)");
  app.add_option("--tls-key", c.tls_key, "PEM key of --tls-cert");
  app.add_flag("--insecure", c.insecure,
               "allow a plaintext connection to a server on another machine");
  std::function<int()> run = AddCommand(command, app, c);
  if (!run) {
    err << "qsweep: unknown command '" << command << "'\n";
    return 2;
  }
  try {
    std::vector<std::string> reversed(args.rbegin(),
                                      args.rend());  // CLI11 wants them reversed
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "qsweep " << command << ": " << e.what() << "\n";
    return 2;
  }
  if (command != "up" && !Connect(c)) return 2;
  // Whatever the server sends (names, trial values, errors, reports) is data:
  // its control characters are shown escaped, never acted on by the terminal.
  TerminalSafeBuf safe_out(out.rdbuf(), c.format == "json" ? TerminalSafeBuf::Mode::kJson
                                                           : TerminalSafeBuf::Mode::kText);
  TerminalSafeBuf safe_err(err.rdbuf(), TerminalSafeBuf::Mode::kText);
  std::ostream sout(&safe_out), serr(&safe_err);
  c.out = &sout;
  c.err = &serr;
  const int rc = run();
  sout.flush();
  serr.flush();
  return rc;
}

int RunServiceCommand(const std::string& command, const std::vector<std::string>& args) {
  return RunServiceCommand(command, args, std::cout, std::cerr);
}

}  // namespace qsweep
