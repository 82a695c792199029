#include "server/artifact_streams.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "server/grpc_status_util.h"
#include "server/validation.h"

namespace qsweep {

constexpr size_t kChunkBytes = 1 << 20;

BlobWriteReactor::BlobWriteReactor(v1::ArtifactInfo info, std::string bytes)
    : info_(std::move(info)), bytes_(std::move(bytes)) {
  WriteNext();
}

void BlobWriteReactor::WriteNext() {
  if (!first_ && offset_ >= bytes_.size()) {
    Finish(grpc::Status::OK);
    return;
  }
  chunk_.Clear();
  if (first_) *chunk_.mutable_info() = info_;
  first_ = false;
  const size_t n = std::min(kChunkBytes, bytes_.size() - offset_);
  chunk_.set_data(bytes_.substr(offset_, n));
  offset_ += n;
  StartWrite(&chunk_);
}

void BlobWriteReactor::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client went away"));
    return;
  }
  WriteNext();
}

UploadReactor::UploadReactor(Store &store, Coordinator &coordinator, Caller caller,
                             v1::UploadArtifactResponse *response)
    : store_(store), coordinator_(coordinator), caller_(std::move(caller)), response_(response) {
  StartRead(&chunk_);
}

void UploadReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client finished sending
    FinishUpload();
    return;
  }
  if (bytes_.size() + chunk_.data().size() > kMaxArtifactBytes) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("field 'data' exceeds the artifact limit of ", kMaxArtifactBytes, " bytes"))));
    return;
  }
  if (!have_info_) {
    CheckFirstChunk();
    return;
  }
  bytes_ += chunk_.data();
  StartRead(&chunk_);
}

void UploadReactor::CheckFirstChunk() {
  if (auto s = ValidateUploadInfo(chunk_.info()); !s.ok()) {
    Finish(ToGrpcStatus(s));
    return;
  }
  if (auto s = ValidateUploadLease(chunk_.lease_id(), chunk_.lease_epoch()); !s.ok()) {
    Finish(ToGrpcStatus(s));
    return;
  }
  info_ = chunk_.info();
  lease_id_ = chunk_.lease_id();
  lease_epoch_ = chunk_.lease_epoch();
  have_info_ = true;
  bytes_ += chunk_.data();
  coordinator_.Post([this](Scheduler &scheduler) {
    auto attempt = scheduler.CheckUpload(caller_, lease_id_, lease_epoch_, info_.job_id());
    if (!attempt.ok()) {
      Finish(ToGrpcStatus(attempt.status()));
      return;
    }
    StartRead(&chunk_);
  });
}

void UploadReactor::FinishUpload() {
  if (!have_info_) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError("field 'info' is required in the first chunk")));
    return;
  }
  const std::string actual = Sha256Hex(bytes_);
  if (actual != info_.sha256()) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "field 'info.sha256' is ", info_.sha256(), " but the content hashes to ", actual))));
    return;
  }
  info_.set_size_bytes(static_cast<int64_t>(bytes_.size()));
  // The link is made on the strand, under the lease check, so that no other
  // grant or completion of the job can come between them.
  coordinator_.Post([this](Scheduler &scheduler) {
    auto attempt = scheduler.CheckUpload(caller_, lease_id_, lease_epoch_, info_.job_id());
    absl::Status s = attempt.status();
    if (s.ok()) {
      info_.set_attempt(*attempt);
      s = store_.PutArtifact(info_, bytes_);
    }
    if (s.ok()) *response_->mutable_info() = info_;
    Finish(ToGrpcStatus(s));
  });
}

}  // namespace qsweep
