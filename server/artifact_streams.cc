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

UploadReactor::UploadReactor(Store& store, v1::UploadArtifactResponse* response)
    : store_(store), response_(response) {
  StartRead(&chunk_);
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
  if (bytes_.size() + chunk_.data().size() > kMaxArtifactBytes) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("field 'data' exceeds the artifact limit of ", kMaxArtifactBytes, " bytes"))));
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
