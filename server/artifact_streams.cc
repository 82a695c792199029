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

UploadReactor::UploadReactor(Store& store, UploadBudget& budget,
                             v1::UploadArtifactResponse* response)
    : store_(store), budget_(budget), response_(response) {
  const int32_t before = budget_.uploads.fetch_add(1);
  counted_ = true;
  if (before >= kMaxConcurrentUploads) {
    Finish(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("the server is receiving ", before, " uploads; the limit is ",
                     kMaxConcurrentUploads, " at once (retry later)"))));
    return;
  }
  StartRead(&chunk_);
}

void UploadReactor::OnDone() {
  if (counted_) budget_.uploads.fetch_sub(1);
  budget_.bytes.fetch_sub(held_);
  delete this;
}

void UploadReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client finished sending
    FinishUpload();
    return;
  }
  if (!have_info_) {
    if (auto s = ValidateUploadInfo(chunk_.info()); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    info_ = chunk_.info();
    have_info_ = true;
  }
  const int64_t size = static_cast<int64_t>(bytes_.size() + chunk_.data().size());
  if (size > kMaxArtifactBytes) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("field 'data' of artifact ", info_.sha256(), " is at least ", size,
                     " bytes; the limit is ", kMaxArtifactBytes, " bytes"))));
    return;
  }
  const int64_t chunk = static_cast<int64_t>(chunk_.data().size());
  const int64_t in_flight = budget_.bytes.fetch_add(chunk) + chunk;
  held_ += chunk;
  if (in_flight > kMaxUploadBytesInFlight) {
    Finish(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("uploads in progress hold ", in_flight, " bytes; the limit is ",
                     kMaxUploadBytesInFlight, " bytes (retry later)"))));
    return;
  }
  bytes_ += chunk_.data();
  StartRead(&chunk_);
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
  absl::Status s = store_.PutArtifact(info_, bytes_);
  if (s.ok()) *response_->mutable_info() = info_;
  Finish(ToGrpcStatus(s));
}

}  // namespace qsweep
