// The persistence seam of the server. Values are the domain messages of
// proto/qsweep/v1/common.proto; implementations own their schema. Knows
// nothing of the scheduler or of gRPC.
//
// Thread-safety: every implementation is safe to call from several threads at
// once; writes are serialized (one writer) and each method is atomic: after it
// returns OK its effect is durable (the SQLite store commits before returning),
// and after it returns an error nothing was changed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qsweep/v1/common.pb.h"

namespace qsweep {

// Selects jobs. Empty fields match everything.
struct JobFilter {
  std::string sweep_id;
  std::vector<v1::JobState> states;
};

// One job write of Store::UpdateJobs. The write is conditional: the stored
// job must still be at `expected_epoch` in `expected_state` (the values the
// writer last saw), so that a writer with a stale view (e.g. a second server
// on the same database) cannot overwrite a newer one.
struct JobUpdate {
  v1::Job job;
  int64_t expected_epoch = 0;
  v1::JobState expected_state = v1::JOB_STATE_UNSPECIFIED;
};

// FAILED_PRECONDITION unless `stored` is at the update's expected epoch and
// state (shared by the implementations).
absl::Status CheckExpected(const v1::Job& stored, const JobUpdate& update);

class Store {
 public:
  virtual ~Store() = default;

  // Stores a new sweep and all its jobs in one transaction. ALREADY_EXISTS if
  // the sweep id, a job id, or the sweep's non-empty idempotency key is taken;
  // then nothing is stored.
  virtual absl::Status CreateSweep(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs) = 0;
  // NOT_FOUND if there is no such sweep.
  virtual absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id) = 0;
  // NOT_FOUND if no sweep carries this (non-empty) idempotency key.
  virtual absl::StatusOr<v1::Sweep> FindSweepByIdempotencyKey(const std::string& key) = 0;
  // All sweeps, oldest first.
  virtual absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() = 0;

  // Replaces a stored job (matched by id). NOT_FOUND if it was never created.
  virtual absl::Status UpdateJob(const v1::Job& job) = 0;
  // Like UpdateJob, and upserts `attempt` in the same transaction.
  virtual absl::Status UpdateJobAndAttempt(const v1::Job& job, const v1::Attempt& attempt) = 0;
  // Replaces several jobs and upserts `attempt` (if not null) in one
  // transaction: all or nothing. NOT_FOUND if a job was never created;
  // FAILED_PRECONDITION naming the job if one is not at its expected epoch and
  // state (then nothing is changed).
  virtual absl::Status UpdateJobs(const std::vector<JobUpdate>& jobs,
                                  const v1::Attempt* attempt) = 0;
  // NOT_FOUND if there is no such job.
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& job_id) = 0;
  // Matching jobs ordered by sweep creation, then index.
  virtual absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& filter) = 0;
  // Attempts of a job, by number. Empty if none (also for an unknown job).
  virtual absl::StatusOr<std::vector<v1::Attempt>> ListAttempts(const std::string& job_id) = 0;

  // Appends metrics of one attempt. Idempotent: a metric with the same
  // (job, attempt, name, step) replaces the earlier one, so a resent batch
  // stores nothing twice.
  virtual absl::Status AppendMetrics(const std::string& job_id, int32_t attempt,
                                     const std::vector<v1::Metric>& metrics) = 0;
  // Metrics of one attempt ordered by name, then step; `name` "" = all names.
  virtual absl::StatusOr<std::vector<v1::Metric>> ListMetrics(const std::string& job_id,
                                                              int32_t attempt,
                                                              const std::string& name) = 0;

  // Stores content under info.sha256 (the caller has checked the hash) and,
  // when info.job_id is set, links it to (job_id, name), replacing an earlier
  // link. Storing the same content twice keeps one copy.
  virtual absl::Status PutArtifact(const v1::ArtifactInfo& info, const std::string& bytes) = 0;
  // Links content already stored under info.sha256 to (info.job_id,
  // info.name): PutArtifact without passing the bytes again (the server
  // stores an upload's content off the scheduler strand and links it on the
  // strand). NOT_FOUND if no content has this hash. Default: reads the
  // content and calls PutArtifact.
  virtual absl::Status LinkArtifact(const v1::ArtifactInfo& info);
  // NOT_FOUND if no content has this hash.
  virtual absl::StatusOr<std::string> GetArtifactBytes(const std::string& sha256) = 0;
  // NOT_FOUND if the job has no artifact of that name.
  virtual absl::StatusOr<v1::ArtifactInfo> FindArtifact(const std::string& job_id,
                                                        const std::string& name) = 0;
  // Artifacts linked to a job, by name.
  virtual absl::StatusOr<std::vector<v1::ArtifactInfo>> ListArtifacts(
      const std::string& job_id) = 0;

  // Per-epoch resume states (issue 9 §1): at most one per job, kept apart
  // from the content-addressed artifacts. Stores `bytes` (hash info.sha256,
  // for info.job_id, holding info.epochs_done epochs) as the job's resume
  // state; the previous one is deleted. Default (a store without them):
  // UNIMPLEMENTED.
  virtual absl::Status PutResumeState(const v1::ArtifactInfo& info, const std::string& bytes);
  // The job's resume state (and its info, when `info` is not null).
  // NOT_FOUND if it has none.
  virtual absl::StatusOr<std::string> GetResumeState(const std::string& job_id,
                                                     v1::ArtifactInfo* info);
  // Deletes the job's resume state; OK if it has none.
  virtual absl::Status DeleteResumeState(const std::string& job_id);

  // Upserts the report of (job_id, pass_name).
  virtual absl::Status PutReport(const v1::Report& report) = 0;
  // NOT_FOUND if there is none.
  virtual absl::StatusOr<v1::Report> GetReport(const std::string& job_id,
                                               const std::string& pass_name) = 0;

  // Upserts a worker by id.
  virtual absl::Status PutWorker(const v1::WorkerInfo& worker) = 0;
  // All workers by registration time.
  virtual absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers() = 0;

  // Stores a new token. ALREADY_EXISTS if its id is taken; then nothing is
  // stored.
  virtual absl::Status CreateToken(const v1::Token& token) = 0;
  // NOT_FOUND if there is no such token.
  virtual absl::StatusOr<v1::Token> GetToken(const std::string& token_id) = 0;
  // All tokens (revoked ones too), oldest first.
  virtual absl::StatusOr<std::vector<v1::Token>> ListTokens() = 0;
  // Sets revoked_unix_ms. Returns false if it was revoked already (nothing
  // changes); NOT_FOUND if there is no such token.
  virtual absl::StatusOr<bool> RevokeToken(const std::string& token_id, int64_t at_unix_ms) = 0;
  // Removes a worker; OK if there is none.
  virtual absl::Status DeleteWorker(const std::string& worker_id) = 0;

  // Group commit. Between BeginBatch() and EndBatch(), called on one thread,
  // the writes of every method called on that thread join one transaction:
  // each method is still all-or-nothing (an error undoes its own writes only)
  // but none is durable until EndBatch() returns OK, so the caller must not
  // acknowledge them before. EndBatch() commits; on error nothing of the
  // batch was stored. Calls from other threads wait until the batch ends.
  // Batches do not nest. Default (stores without transactions): no-ops.
  virtual absl::Status BeginBatch() { return absl::OkStatus(); }
  virtual absl::Status EndBatch() { return absl::OkStatus(); }
};

// A store that keeps everything in memory, for tests and throw-away servers.
std::unique_ptr<Store> NewInMemoryStore();

}  // namespace qsweep
