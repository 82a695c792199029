#include "server/validation.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace qsweep {
namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field, "' ", what));
}

absl::Status Required(const std::string& field, const std::string& value) {
  if (value.empty()) return Bad(field, "is required");
  if (value.size() > 256) return Bad(field, "is longer than 256 characters");
  return absl::OkStatus();
}

absl::Status Optional(const std::string& field, const std::string& value) {
  if (value.size() > 256) return Bad(field, "is longer than 256 characters");
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
  if (r.sweep_toml().size() > kMaxSweepTomlBytes)
    return Bad("sweep_toml", absl::StrCat("is larger than ", kMaxSweepTomlBytes, " bytes"));
  return absl::OkStatus();
}

absl::Status Validate(const v1::GetSweepRequest& r) { return Required("sweep_id", r.sweep_id()); }

absl::Status Validate(const v1::ListSweepsRequest& r) {
  return Range("limit", r.limit(), 0, 1000000);
}

absl::Status Validate(const v1::ListJobsRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Required("sweep_id", r.sweep_id()));
  if (!v1::JobState_IsValid(r.state()))
    return Bad("state", "must be one of PENDING, LEASED, RUNNING, SUCCEEDED, FAILED, CANCELLED");
  QSWEEP_RETURN_IF_ERROR(Range("page_size", r.page_size(), 0, 100000));
  for (char c : r.sort_by())
    if (!absl::ascii_isalnum(c) && c != '_')
      return Bad("sort_by", "must be 'index', 'state' or a metric name (letters, digits, _)");
  for (char c : r.page_token())
    if (!absl::ascii_isdigit(c)) return Bad("page_token", "is not a token this server issued");
  if (r.page_token().size() > 9) return Bad("page_token", "is not a token this server issued");
  return absl::OkStatus();
}

absl::Status Validate(const v1::GetJobRequest& r) { return Required("job_id", r.job_id()); }
absl::Status Validate(const v1::WatchSweepRequest& r) { return Required("sweep_id", r.sweep_id()); }

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
  if (r.sweep_id().empty() && r.job_ids().empty())
    return Bad("sweep_id", "is required when job_ids is empty");
  for (int i = 0; i < r.job_ids_size(); ++i)
    QSWEEP_RETURN_IF_ERROR(Required(absl::StrCat("job_ids[", i, "]"), r.job_ids(i)));
  return absl::OkStatus();
}

absl::Status Validate(const v1::GetMetricsRequest& r) { return Required("job_id", r.job_id()); }

absl::Status Validate(const v1::GetReportRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Required("job_id", r.job_id()));
  return Required("pass_name", r.pass_name());
}

absl::Status Validate(const v1::SubmitTransformRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("from_job_id", r.from_job_id()));
  QSWEEP_RETURN_IF_ERROR(Optional("source_name", r.source_name()));
  if (r.config_toml().empty()) return Bad("config_toml", "is required (the transform config)");
  if (r.config_toml().size() > kMaxSweepTomlBytes)
    return Bad("config_toml", absl::StrCat("is larger than ", kMaxSweepTomlBytes, " bytes"));
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
  return Range("slots", r.slots(), 1, 1024);
}

absl::Status Validate(const v1::LeaseRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("worker_id", r.worker_id()));
  QSWEEP_RETURN_IF_ERROR(Range("max_jobs", r.max_jobs(), 1, 1024));
  return Range("wait_ms", r.wait_ms(), 0, 600000);
}

absl::Status Validate(const v1::HeartbeatRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Required("worker_id", r.worker_id()));
  for (int i = 0; i < r.updates_size(); ++i) {
    const std::string f = absl::StrCat("updates[", i, "].");
    QSWEEP_RETURN_IF_ERROR(Lease(f, r.updates(i).lease_id(), r.updates(i).epoch()));
    QSWEEP_RETURN_IF_ERROR(Metrics(f, r.updates(i).metrics()));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::CompleteRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Lease("", r.lease_id(), r.epoch()));
  if (!r.best_checkpoint_sha256().empty())
    QSWEEP_RETURN_IF_ERROR(Sha256Field("best_checkpoint_sha256", r.best_checkpoint_sha256()));
  if (!r.last_checkpoint_sha256().empty())
    QSWEEP_RETURN_IF_ERROR(Sha256Field("last_checkpoint_sha256", r.last_checkpoint_sha256()));
  return Metrics("", r.metrics());
}

absl::Status Validate(const v1::FailRequest& r) {
  QSWEEP_RETURN_IF_ERROR(Optional("request_id", r.request_id()));
  QSWEEP_RETURN_IF_ERROR(Lease("", r.lease_id(), r.epoch()));
  return Metrics("", r.metrics());
}

absl::Status Validate(const v1::FetchArtifactRequest& r) {
  return Sha256Field("sha256", r.sha256());
}

absl::Status ValidateUploadInfo(const v1::ArtifactInfo& info) {
  QSWEEP_RETURN_IF_ERROR(Sha256Field("info.sha256", info.sha256()));
  if (info.kind() != "checkpoint" && info.kind() != "state_dict")
    return Bad("info.kind", "must be checkpoint or state_dict (workers upload job artifacts)");
  QSWEEP_RETURN_IF_ERROR(Required("info.job_id", info.job_id()));
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
