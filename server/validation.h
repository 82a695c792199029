// Request validation for both services. Each function returns OK or
// INVALID_ARGUMENT naming the field and what is allowed; the adapters call it
// before anything reaches the scheduler or the store.
#pragma once

#include "absl/status/status.h"
#include "common/limits.h"
#include "qsweep/v1/experiments.pb.h"
#include "qsweep/v1/workers.pb.h"

namespace qsweep {

absl::Status Validate(const v1::SubmitSweepRequest& r);
absl::Status Validate(const v1::GetSweepRequest& r);
absl::Status Validate(const v1::ListSweepsRequest& r);
absl::Status Validate(const v1::ListJobsRequest& r);
absl::Status Validate(const v1::GetJobRequest& r);
absl::Status Validate(const v1::WatchSweepRequest& r);
absl::Status Validate(const v1::CancelSweepRequest& r);
absl::Status Validate(const v1::CancelJobRequest& r);
absl::Status Validate(const v1::RetryJobsRequest& r);
absl::Status Validate(const v1::GetMetricsRequest& r);
absl::Status Validate(const v1::GetReportRequest& r);
absl::Status Validate(const v1::SubmitTransformRequest& r);
absl::Status Validate(const v1::DownloadArtifactRequest& r);

absl::Status Validate(const v1::RegisterRequest& r);
absl::Status Validate(const v1::LeaseRequest& r);
absl::Status Validate(const v1::HeartbeatRequest& r);
absl::Status Validate(const v1::CompleteRequest& r);
absl::Status Validate(const v1::FailRequest& r);
absl::Status Validate(const v1::FetchArtifactRequest& r);
// The info of an upload's first chunk.
absl::Status ValidateUploadInfo(const v1::ArtifactInfo& info);
// The lease named in an upload's first chunk.
absl::Status ValidateUploadLease(const std::string& lease_id, int64_t epoch);

// The limits themselves (sizes, counts) are in common/limits.h.

}  // namespace qsweep
