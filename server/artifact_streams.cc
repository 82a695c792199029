#include "server/artifact_streams.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "server/grpc_status_util.h"
#include "server/validation.h"

namespace qsweep {

constexpr size_t kChunkBytes = 1 << 20;

BlobWriteReactor::BlobWriteReactor(v1::ArtifactInfo info, std::string bytes) {
  Send(std::move(info), std::move(bytes));
}

void BlobWriteReactor::Send(v1::ArtifactInfo info, std::string bytes) {
  info_ = std::move(info);
  bytes_ = std::move(bytes);
  WriteNext();
}

void BlobWriteReactor::Fail(const absl::Status& status) { Finish(ToGrpcStatus(status)); }

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

UploadReactor::UploadReactor(Store& store, Coordinator& coordinator, WorkPool& pool, Caller caller,
                             UploadBudget& budget, v1::UploadArtifactResponse* response)
    : store_(store),
      coordinator_(coordinator),
      pool_(pool),
      caller_(std::move(caller)),
      budget_(budget),
      response_(response) {
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

bool UploadReactor::Take() {
  const int64_t size = static_cast<int64_t>(bytes_.size() + chunk_.data().size());
  if (size > kMaxArtifactBytes) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("field 'data' of artifact ", info_.sha256(), " is at least ", size,
                     " bytes; the limit is ", kMaxArtifactBytes, " bytes"))));
    return false;
  }
  const int64_t chunk = static_cast<int64_t>(chunk_.data().size());
  const int64_t in_flight = budget_.bytes.fetch_add(chunk) + chunk;
  held_ += chunk;
  if (in_flight > kMaxUploadBytesInFlight) {
    Finish(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("uploads in progress hold ", in_flight, " bytes; the limit is ",
                     kMaxUploadBytesInFlight, " bytes (retry later)"))));
    return false;
  }
  bytes_ += chunk_.data();
  return true;
}

void UploadReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client finished sending
    FinishUpload();
    return;
  }
  if (!have_info_) {
    CheckFirstChunk();
    return;
  }
  if (Take()) StartRead(&chunk_);
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
  if (!Take()) return;
  coordinator_.Post([this](Scheduler& scheduler) {
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
  pool_.Post([this] { StoreUpload(); });  // hashing and storing take a while
}

void UploadReactor::StoreUpload() {
  const std::string actual = Sha256Hex(bytes_);
  if (actual != info_.sha256()) {
    Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "field 'info.sha256' is ", info_.sha256(), " but the content hashes to ", actual))));
    return;
  }
  if (info_.size_bytes() != 0 && info_.size_bytes() != static_cast<int64_t>(bytes_.size())) {
    Finish(ToGrpcStatus(
        absl::InvalidArgumentError(absl::StrCat("field 'info.size_bytes' is ", info_.size_bytes(),
                                                " but ", bytes_.size(), " bytes were sent"))));
    return;
  }
  info_.set_size_bytes(static_cast<int64_t>(bytes_.size()));
  // The content first, here (content-addressed: an upload whose lease is
  // lost meanwhile leaves unlinked content, never a wrong link).
  // A resume state is not content-addressed: the job keeps one, replaced on
  // the strand with the lease check (small: a few KB per trial).
  const bool resume = info_.kind() == "resume";
  if (!resume) {
    v1::ArtifactInfo content = info_;
    content.clear_job_id();
    if (absl::Status s = store_.PutArtifact(content, bytes_); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    bytes_.clear();
    bytes_.shrink_to_fit();
  }
  // The link is made on the strand, under the lease check, so that no other
  // grant or completion of the job can come between them.
  coordinator_.Post([this](Scheduler& scheduler) {
    auto attempt = scheduler.CheckUpload(caller_, lease_id_, lease_epoch_, info_.job_id());
    absl::Status s = attempt.status();
    if (s.ok()) info_.set_attempt(*attempt);
    if (s.ok() && info_.kind() == "resume") {
      // The job's one resume state, recorded on the job (issue 9 §1).
      s = scheduler.StoreResumeState(caller_, lease_id_, lease_epoch_, info_, bytes_);
    } else if (s.ok()) {
      s = store_.LinkArtifact(info_);
    }
    coordinator_.Ack([this, s](const absl::Status& committed) {
      if (s.ok() && committed.ok()) *response_->mutable_info() = info_;
      Finish(ToGrpcStatus(committed.ok() ? s : committed));
    });
  });
}

}  // namespace qsweep
