// Reactors that stream artifacts: a writer that sends stored bytes in chunks
// (DownloadArtifact, FetchArtifact) and a reader that collects an upload,
// checks its SHA-256 and stores it (UploadArtifact).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "qsweep/v1/workers.pb.h"
#include "server/caller.h"
#include "server/coordinator.h"
#include "server/work_pool.h"
#include "storage/store.h"

namespace qsweep {

// Sends `info` with the first chunk, then `bytes` in chunks of at most 1 MiB.
// Deletes itself when done.
class BlobWriteReactor final : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
 public:
  BlobWriteReactor(v1::ArtifactInfo info, std::string bytes);
  // Sends nothing until Send() or Fail() (called once, from any thread: the
  // content is read off the gRPC threads, see WorkPool).
  BlobWriteReactor() = default;
  void Send(v1::ArtifactInfo info, std::string bytes);
  void Fail(const absl::Status& status);
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void WriteNext();
  v1::ArtifactInfo info_;
  std::string bytes_;
  size_t offset_ = 0;
  bool first_ = true;
  v1::ArtifactChunk chunk_;
};

// What the uploads of one server hold at once (common/limits.h:
// kMaxConcurrentUploads, kMaxUploadBytesInFlight). Shared by its uploads.
struct UploadBudget {
  std::atomic<int32_t> uploads{0};
  std::atomic<int64_t> bytes{0};
};

// Reads an upload into memory (bounded: kMaxArtifactBytes per upload, and
// `budget` for all uploads together), verifies it, stores it in `store`.
// The hash check and the content write run on `pool`; only the link to the
// job (Store::LinkArtifact, small) is written on the strand.
// RESOURCE_EXHAUSTED when the server already receives kMaxConcurrentUploads
// uploads or holds kMaxUploadBytesInFlight. Only the caller holding the
// current lease of info.job_id may upload (checked on the scheduler strand when
// the first chunk arrives, and again when the content is stored, so a lease
// lost meanwhile stores nothing); the link is recorded with that lease's
// attempt. A resume state (info.kind "resume") is stored as the job's only one
// (Scheduler::StoreResumeState), not as an artifact. Deletes itself when done.
class UploadReactor final : public grpc::ServerReadReactor<v1::ArtifactChunk> {
 public:
  UploadReactor(Store& store, Coordinator& coordinator, WorkPool& pool, Caller caller,
                UploadBudget& budget, v1::UploadArtifactResponse* response);
  void OnReadDone(bool ok) override;
  void OnDone() override;

 private:
  void CheckFirstChunk();
  // Adds the chunk to bytes_ within the limits; false after Finish.
  bool Take();
  void FinishUpload();
  void StoreUpload();  // on the pool
  Store& store_;
  Coordinator& coordinator_;
  WorkPool& pool_;
  const Caller caller_;
  UploadBudget& budget_;
  v1::UploadArtifactResponse* response_;
  v1::ArtifactChunk chunk_;
  v1::ArtifactInfo info_;
  std::string lease_id_;
  int64_t lease_epoch_ = 0;
  std::string bytes_;
  bool have_info_ = false;
  bool counted_ = false;  // holds a place in budget_.uploads
  int64_t held_ = 0;      // bytes counted in budget_.bytes
};

}  // namespace qsweep
