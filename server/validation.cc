#include "server/validation.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace qsweep {
namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field, "' ", what));
}

absl::Status TooLong(const std::string& field, size_t size, size_t limit) {
  return Bad(field, absl::StrCat("is ", size, " bytes long; the limit is ", limit, " bytes"));
}

absl::Status TooMany(const std::string& field, size_t count, size_t limit) {
  return Bad(field, absl::StrCat("has ", count, " entries; the limit is ", limit));
}

absl::Status MaxBytes(const std::string& field, const std::string& value, size_t limit) {
  return value.size() > limit ? TooLong(field, value.size(), limit) : absl::OkStatus();
}

absl::Status Required(const std::string& field, const std::string& value) {
  if (value.empty()) return Bad(field, "is required");
  return MaxBytes(field, value, kMaxIdBytes);
}

absl::Status Optional(const std::string& field, const std::string& value) {
  return MaxBytes(field, value, kMaxIdBytes);
}

absl::Status PageToken(const std::string& token) {
  for (char c : token)
    if (!absl::ascii_isdigit(c)) return Bad("page_token", "is not a token this server issued");
  if (token.size() > 9) return Bad("page_token", "is not a token this server issued");
  return absl::OkStatus();
}

absl::Status Range(const std::string& field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
  return absl::OkStatus();
}

absl::Status Sha256Field(const std::string& field, const std::string& v) {
  bool ok = v.size() == 64;
  for (char c : v) ok = ok && (absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'));
  if (!ok) return Bad(field, "must be 64 lowercase hex digits (a SHA-256)");
  return absl::OkStatus();
}

absl::Status Lease(const std::string& prefix, const std::string& lease_id, int64_t epoch) {
  QSWEEP_RETURN_IF_ERROR(Required(prefix + "lease_id", lease_id));
  if (epoch <= 0) return Bad(prefix + "epoch", absl::StrCat("must be >= 1, got ", epoch));
  return absl::OkStatus();
}

absl::Status Metrics(const std::string& prefix,
                     const google::protobuf::RepeatedPtrField<v1::Metric>& metrics) {
  if (metrics.size() > kMaxMetricsPerRequest)
    return TooMany(prefix + "metrics", metrics.size(), kMaxMetricsPerRequest);
  for (int i = 0; i < metrics.size(); ++i) {
    const std::string f = absl::StrCat(prefix, "metrics[", i, "].");
    QSWEEP_RETURN_IF_ERROR(Required(f + "name", metrics[i].name()));
    if (metrics[i].step() < 0) return Bad(f + "step", "must be >= 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Validate(const v1::SubmitSweepRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Optional("idempotency_key", r.idempotency_key()));
  QSWEEP_RETURN_IF_ERROR(Optional("name", r.name()));
  QSWEEP_RETURN_IF_ERROR(Optional("source_name", r.source_name()));
  if (r.sweep_toml().empty()) return Bad("sweep_toml", "is required (the sweep file's text)");
  return MaxBytes("sweep_toml", r.sweep_toml(), kMaxSweepTomlBytes);
}

absl::Status Validate(const v1::GetSweepRequest& r) { return Required("sweep_id", r.sweep_id()); }

absl::Status Validate(const v1::ListSweepsRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Range("limit", r.limit(), 0, 1000000));
  if (r.page_size() < 0) return Bad("page_size", absl::StrCat("must be >= 0, got ", r.page_size()));
  return PageToken(r.page_token());
}

absl::Status Validate(const v1::ListJobsRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Required("sweep_id", r.sweep_id()));
  if (!v1::JobState_IsValid(r.state()))
    return Bad("state", "must be one of PENDING, LEASED, RUNNING, SUCCEEDED, FAILED, CANCELLED");
  // A page_size over the server's maximum is lowered to it (job_query.h).
  if (r.page_size() < 0) return Bad("page_size", absl::StrCat("must be >= 0, got ", r.page_size()));
  QSWEEP_RETURN_IF_ERROR(Optional("sort_by", r.sort_by()));
  for (char c : r.sort_by())
    if (!absl::ascii_isalnum(c) && c != '_')
      return Bad("sort_by", "must be 'index', 'state' or a metric name (letters, digits, _)");
  return PageToken(r.page_token());
}

absl::Status Validate(const v1::GetJobRequest& r) { return Required("job_id", r.job_id()); }
absl::Status Validate(const v1::WatchSweepRequest& r) {
  if (r.page_size() < 0) return Bad("page_size", absl::StrCat("must be >= 0, got ", r.page_size()));
  return Required("sweep_id", r.sweep_id());
}

absl::Status Validate(const v1::CancelSweepRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  return Required("sweep_id", r.sweep_id());
}

absl::Status Validate(const v1::CancelJobRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  return Required("job_id", r.job_id());
}

absl::Status Validate(const v1::RetryJobsRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Optional("sweep_id", r.sweep_id()));
  if (r.sweep_id().empty() && r.job_ids().empty())
    return Bad("sweep_id", "is required when job_ids is empty");
  if (r.job_ids_size() > kMaxRetryJobIds)
    return TooMany("job_ids", r.job_ids_size(), kMaxRetryJobIds);
  for (int i = 0; i < r.job_ids_size(); ++i)
    QSWEEP_RETURN_IF_ERROR(Required(absl::StrCat("job_ids[", i, "]"), r.job_ids(i)));
  return absl::OkStatus();
}

absl::Status Validate(const v1::GetMetricsRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("name", r.name()));
  return Required("job_id", r.job_id());
}

absl::Status Validate(const v1::GetReportRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Required("job_id", r.job_id()));
  return Required("pass_name", r.pass_name());
}

absl::Status Validate(const v1::SubmitTransformRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("from_job_id", r.from_job_id()));
  QSWEEP_RETURN_IF_ERROR(Optional("source_name", r.source_name()));
  if (r.config_toml().empty()) return Bad("config_toml", "is required (the transform config)");
  QSWEEP_RETURN_IF_ERROR(MaxBytes("config_toml", r.config_toml(), kMaxSweepTomlBytes));
  return Range("fine_tune_epochs", r.fine_tune_epochs(), 0, 1000);
}

absl::Status Validate(const v1::DownloadArtifactRequest& r) {
  if (!r.sha256().empty()) return Sha256Field("sha256", r.sha256());
  if (r.job_id().empty()) return Bad("sha256", "or job_id with name is required");
  QSWEEP_RETURN_IF_ERROR(Required("job_id", r.job_id()));
  return Required("name", r.name());
}

absl::Status Validate(const v1::RegisterRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Optional("name", r.name()));
  const std::string& d = r.device();
  bool device_ok = d == "cpu" || d == "cuda";
  if (d.rfind("cuda:", 0) == 0 && d.size() > 5) {
    device_ok = true;
    for (size_t i = 5; i < d.size(); ++i) device_ok = device_ok && absl::ascii_isdigit(d[i]);
  }
  if (!device_ok) return Bad("device", absl::StrCat("is '", d, "'; allowed: cpu, cuda, cuda:N"));
  QSWEEP_RETURN_IF_ERROR(Range("slots", r.slots(), 1, 1024));
  if (r.devices_size() > r.slots())
    return Bad("devices", absl::StrCat("has ", r.devices_size(), " entries for ", r.slots(),
                                       " slots; at most one per slot"));
  for (const std::string& dev : r.devices()) {
    bool ok = dev.rfind("cuda:", 0) == 0 && dev.size() > 5 && dev.size() <= 10;
    for (size_t i = 5; ok && i < dev.size(); ++i) ok = absl::ascii_isdigit(dev[i]);
    if (!ok && dev != "cpu")
      return Bad("devices",
                 absl::StrCat("has an entry that is not cpu or cuda:N (", dev.substr(0, 32), ")"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::LeaseRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("worker_id", r.worker_id()));
  QSWEEP_RETURN_IF_ERROR(Range("max_jobs", r.max_jobs(), 1, 1024));
  QSWEEP_RETURN_IF_ERROR(Range("pack", r.pack(), 0, kMaxPack));
  if (int64_t{r.max_jobs()} * std::max(1, r.pack()) > kMaxLeaseUpdates)
    return absl::InvalidArgumentError(
        absl::StrCat("fields 'max_jobs' x 'pack' = ", int64_t{r.max_jobs()} * r.pack(),
                     " leases; at most ", kMaxLeaseUpdates, " at once"));
  return Range("wait_ms", r.wait_ms(), 0, 600000);
}

absl::Status Validate(const v1::HeartbeatRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("worker_id", r.worker_id()));
  if (r.updates_size() > kMaxLeaseUpdates)
    return TooMany("updates", r.updates_size(), kMaxLeaseUpdates);
  size_t metrics = 0;
  for (int i = 0; i < r.updates_size(); ++i) {
    const std::string f = absl::StrCat("updates[", i, "].");
    QSWEEP_RETURN_IF_ERROR(Lease(f, r.updates(i).lease_id(), r.updates(i).epoch()));
    QSWEEP_RETURN_IF_ERROR(Metrics(f, r.updates(i).metrics()));
    metrics += static_cast<size_t>(r.updates(i).metrics_size());
  }
  if (metrics > static_cast<size_t>(kMaxMetricsPerRequest))
    return Bad("updates[].metrics", absl::StrCat("hold ", metrics, " metrics in all; the limit is ",
                                                 kMaxMetricsPerRequest, " per request"));
  return absl::OkStatus();
}

absl::Status Validate(const v1::CompleteRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Lease("", r.lease_id(), r.epoch()));
  if (!r.best_checkpoint_sha256().empty())
    QSWEEP_RETURN_IF_ERROR(Sha256Field("best_checkpoint_sha256", r.best_checkpoint_sha256()));
  if (!r.last_checkpoint_sha256().empty())
    QSWEEP_RETURN_IF_ERROR(Sha256Field("last_checkpoint_sha256", r.last_checkpoint_sha256()));
  QSWEEP_RETURN_IF_ERROR(MaxBytes("result_json", r.result_json(), kMaxResultJsonBytes));
  if (r.final_metrics_size() > kMaxFinalMetrics)
    return TooMany("final_metrics", r.final_metrics_size(), kMaxFinalMetrics);
  for (const auto& [name, value] : r.final_metrics())
    QSWEEP_RETURN_IF_ERROR(Required("final_metrics key", name));
  if (r.reports_size() > kMaxReportsPerComplete)
    return TooMany("reports", r.reports_size(), kMaxReportsPerComplete);
  for (int i = 0; i < r.reports_size(); ++i) {
    const std::string f = absl::StrCat("reports[", i, "]");
    QSWEEP_RETURN_IF_ERROR(Required(f + ".pass_name", r.reports(i).pass_name()));
    const size_t size = r.reports(i).json().size() + r.reports(i).text().size();
    if (size > kMaxReportBytes)
      return Bad(f, absl::StrCat("(json and text) is ", size, " bytes long; the limit is ",
                                 kMaxReportBytes, " bytes"));
  }
  if (r.has_lease_next()) {
    absl::Status s = Validate(r.lease_next());
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("lease_next: ", s.message()));
  }
  return Metrics("", r.metrics());
}

absl::Status Validate(const v1::FailRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Lease("", r.lease_id(), r.epoch()));
  QSWEEP_RETURN_IF_ERROR(MaxBytes("error", r.error(), kMaxErrorBytes));
  return Metrics("", r.metrics());
}

absl::Status Validate(const v1::FetchArtifactRequest& r) {
  return Sha256Field("sha256", r.sha256());
}

absl::Status ValidateUploadInfo(const v1::ArtifactInfo& info) {
  QSWEEP_RETURN_IF_ERROR(Sha256Field("info.sha256", info.sha256()));
  if (info.kind() != "checkpoint" && info.kind() != "state_dict" && info.kind() != "resume")
    return Bad("info.kind",
               "must be checkpoint, state_dict or resume (workers upload job artifacts)");
  QSWEEP_RETURN_IF_ERROR(Required("info.job_id", info.job_id()));
  // 0 = not declared; the server counts the bytes it receives either way.
  QSWEEP_RETURN_IF_ERROR(Range("info.size_bytes", info.size_bytes(), 0, kMaxArtifactBytes));
  // A per-epoch resume state (issue 9 §1): one per job, replaced by the next.
  if (info.kind() == "resume" || info.name() == "resume") {
    if (info.kind() != "resume" || info.name() != "resume")
      return Bad("info.name", "must be resume exactly when info.kind is resume");
    return Range("info.epochs_done", info.epochs_done(), 1, 1000000000);
  }
  static const char* const kNames[] = {"best", "last", "best_state_dict", "transformed",
                                       "transformed_state_dict"};
  for (const char* n : kNames)
    if (info.name() == n) return absl::OkStatus();
  return Bad("info.name",
             "must be one of best, last, best_state_dict, transformed, transformed_state_dict");
}

absl::Status ValidateUploadLease(const std::string& lease_id, int64_t epoch) {
  QSWEEP_RETURN_IF_ERROR(Required("lease_id", lease_id));
  if (epoch <= 0) return Bad("lease_epoch", "must be >= 1 (the epoch of the lease)");
  return absl::OkStatus();
}

}  // namespace qsweep
