// Every request either service accepts, parsed from arbitrary bytes as the
// gRPC layer would, then validated. The first byte picks the message type.
// A validator may refuse (INVALID_ARGUMENT); it may not crash or trip a
// sanitizer, and it never answers with another code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "server/validation.h"

namespace {

template <typename Request>
void Check(const uint8_t* data, size_t size) {
  Request r;
  if (!r.ParseFromArray(data, static_cast<int>(size))) return;
  const absl::Status s = qsweep::Validate(r);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
}

void CheckUpload(const uint8_t* data, size_t size) {
  qsweep::v1::ArtifactInfo info;
  if (!info.ParseFromArray(data, static_cast<int>(size))) return;
  const absl::Status s = qsweep::ValidateUploadInfo(info);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
}

void CheckLease(const uint8_t* data, size_t size) {
  if (size < 8) return;
  int64_t epoch = 0;
  for (int i = 0; i < 8; ++i)
    epoch = static_cast<int64_t>(static_cast<uint64_t>(epoch) << 8 | data[i]);
  const std::string lease(reinterpret_cast<const char*>(data + 8), size - 8);
  const absl::Status s = qsweep::ValidateUploadLease(lease, epoch);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1u << 20)) return -1;
  namespace v1 = qsweep::v1;
  const uint8_t which = data[0] % 21;
  ++data;
  --size;
  switch (which) {
    case 0:
      Check<v1::SubmitSweepRequest>(data, size);
      break;
    case 1:
      Check<v1::GetSweepRequest>(data, size);
      break;
    case 2:
      Check<v1::ListSweepsRequest>(data, size);
      break;
    case 3:
      Check<v1::ListJobsRequest>(data, size);
      break;
    case 4:
      Check<v1::GetJobRequest>(data, size);
      break;
    case 5:
      Check<v1::WatchSweepRequest>(data, size);
      break;
    case 6:
      Check<v1::CancelSweepRequest>(data, size);
      break;
    case 7:
      Check<v1::CancelJobRequest>(data, size);
      break;
    case 8:
      Check<v1::RetryJobsRequest>(data, size);
      break;
    case 9:
      Check<v1::GetMetricsRequest>(data, size);
      break;
    case 10:
      Check<v1::GetReportRequest>(data, size);
      break;
    case 11:
      Check<v1::SubmitTransformRequest>(data, size);
      break;
    case 12:
      Check<v1::DownloadArtifactRequest>(data, size);
      break;
    case 13:
      Check<v1::RegisterRequest>(data, size);
      break;
    case 14:
      Check<v1::LeaseRequest>(data, size);
      break;
    case 15:
      Check<v1::HeartbeatRequest>(data, size);
      break;
    case 16:
      Check<v1::CompleteRequest>(data, size);
      break;
    case 17:
      Check<v1::FailRequest>(data, size);
      break;
    case 18:
      Check<v1::FetchArtifactRequest>(data, size);
      break;
    case 19:
      CheckUpload(data, size);
      break;
    default:
      CheckLease(data, size);
      break;
  }
  return 0;
}
