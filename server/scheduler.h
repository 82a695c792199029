// The coordinator's logic: the job queue, leases, retries, cancellation and
// per-sweep concurrency, over a Store. Not thread-safe: every method must be
// called on the scheduler strand (see Coordinator), which is what lets it keep
// its state without locks. Time comes only from the injected Clock.
//
// Leases: a grant moves a job PENDING -> LEASED with a new lease id
// ("<job id>#<epoch>#<32 random hex digits>", a secret never shown to
// clients) and an epoch one higher than any before for that job.
// Heartbeats renew it (the first one moves the job to RUNNING); a lease not
// renewed within the TTL expires at the next Tick() and the job goes back to
// PENDING (or FAILED after too many expiries). Lease deadlines, time limits
// and Lease waits run on Clock::MonotonicMs: a step of the wall clock neither
// expires nor extends a lease (Job.lease_expires_unix_ms is for display).
//
// Time limit: an attempt running longer than its sweep's `timeout` (else
// SchedulerOptions::{train,transform}_timeout_ms) is failed at the next Tick
// with an error that says so, and retried per the sweep's `retries`.
//
// Dependents: the write that ends a job also resolves the PENDING jobs that
// depend on it (input checkpoint, or CANCELLED), in one store transaction;
// Recover() resolves any that a server of an older version left blocked. Complete and Fail with an
// older epoch are rejected with FAILED_PRECONDITION; repeating an accepted call is harmless and
// returns OK.
//
// Identity: every call names its Caller (server/auth.h). Users act only on
// their own sweeps (admins on all); another user's sweep or job is answered
// NOT_FOUND exactly like a missing one. A worker id belongs to the worker
// token that registered it, and a lease to that worker: calls with another
// token get PERMISSION_DENIED.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "common/limits.h"
#include "qsweep/v1/experiments.pb.h"
#include "qsweep/v1/workers.pb.h"
#include "server/caller.h"
#include "server/clock.h"
#include "storage/store.h"

namespace qsweep {

struct SweepPlan;

struct SchedulerOptions {
  // How long a lease lives without a heartbeat. Default: 30000 ms.
  int64_t lease_ttl_ms = 30000;
  // Heartbeat period suggested to workers. Default: 5000 ms.
  int64_t heartbeat_interval_ms = 5000;
  // Upper bound on a Lease long-poll. Default: 30000 ms.
  int64_t max_lease_wait_ms = 30000;
  // Expired leases tolerated per job before it is marked FAILED. Default: 3.
  int32_t max_expiries = 3;
  // Lease responses remembered by request id, so a retried Lease call gets
  // the same leases instead of new ones. Default: 1024.
  size_t lease_replay_cache = 1024;
  // A worker not seen (Register, Lease, Heartbeat) for this long that holds
  // no lease is removed at the next Tick. Default: kWorkerExpiryMs.
  int64_t worker_expiry_ms = kWorkerExpiryMs;
  // Registered workers per caller identity, and in all. Default:
  // kMaxWorkersPerIdentity, kMaxWorkers (common/limits.h).
  int32_t max_workers_per_identity = kMaxWorkersPerIdentity;
  int32_t max_workers = kMaxWorkers;
  // Per-attempt time limits by job kind, for sweeps without `timeout`.
  // Default: 24 h for TRAIN, 6 h for TRANSFORM.
  int64_t train_timeout_ms = 24LL * 3600 * 1000;
  int64_t transform_timeout_ms = 6LL * 3600 * 1000;
};

// The key under which a submission is remembered: the request's idempotency
// key (else its request id), scoped to the caller's owner so that one user's
// key never finds another user's sweep. "" = neither is set.
std::string SweepIdempotencyKey(const Caller& caller, const v1::SubmitSweepRequest& request);

class Scheduler {
 public:
  using LeaseDone = std::function<void(absl::StatusOr<v1::LeaseResponse>)>;

  // `store` and `clock` are not owned and must outlive the scheduler.
  Scheduler(Store& store, Clock& clock, SchedulerOptions options = {});

  // Loads workers, sweeps and jobs from the store. Jobs that held a lease get
  // one more TTL from now to be renewed by their worker; if not, they expire
  // as usual. Call once, before anything else.
  absl::Status Recover();

  // Validates and expands the sweep, then stores it with its jobs. With a
  // non-empty idempotency key (or else request id) seen before, returns the
  // earlier sweep with `existing` set. INVALID_ARGUMENT naming the field for a
  // bad sweep file. `dataset_sha256`, when not empty, has one hash per trial
  // of the expansion (see dataset_artifacts.h); it is recorded in the trial's
  // TRAIN job and its TRANSFORM job. INTERNAL if its size does not match.
  // The sweep's owner is the caller; idempotency keys are per owner.
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const Caller& caller, const v1::SubmitSweepRequest& request,
      const std::vector<std::string>& dataset_sha256 = {});
  // The same with the request's sweep already expanded (ExpandSweepForService
  // of its sweep_toml, off the strand): the sweep is expanded once per
  // submission, and never on the strand.
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const Caller& caller, const v1::SubmitSweepRequest& request, const SweepPlan& plan,
      const std::vector<std::string>& dataset_sha256 = {});

  // Adds a one-job sweep with a TRANSFORM job on from_job_id's best
  // checkpoint. NOT_FOUND for an unknown job, INVALID_ARGUMENT for a job that
  // is not TRAIN or a bad config. A repeated request id returns the first one.
  absl::StatusOr<v1::SubmitTransformResponse> SubmitTransform(
      const Caller& caller, const v1::SubmitTransformRequest& request);

  // Registers a worker; it belongs to the caller's token (the identity). A
  // repeated (token, name, request id) returns the same worker id, also after
  // a restart. RESOURCE_EXHAUSTED naming the identity and the limit when the
  // token already has max_workers_per_identity workers, or the server
  // max_workers (stale workers are expired first).
  absl::StatusOr<v1::RegisterResponse> Register(const Caller& caller,
                                                const v1::RegisterRequest& request);

  // Grants up to max_jobs leases. When none is available and wait_ms > 0,
  // `done` is called later (on this strand): when work appears, or with an
  // empty response once the wait is over (at a Tick) or at CloseWaiters().
  // NOT_FOUND for an unregistered worker.
  void Lease(const Caller& caller, const v1::LeaseRequest& request, LeaseDone done);

  // Renews leases, records progress and metrics, delivers cancellations.
  // Unknown or stale leases get LOST; never an error for one bad lease.
  // Leases not held by request.worker_id get LOST too.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const Caller& caller,
                                                  const v1::HeartbeatRequest& request);

  // Marks the lease's job SUCCEEDED. FAILED_PRECONDITION if the lease is not
  // the job's current one or the job was cancelled; NOT_FOUND for a lease id
  // that names no job. The best/last hashes must be artifacts this attempt
  // uploaded (INVALID_ARGUMENT otherwise); the job records the hash of every
  // artifact its attempt linked (Job.artifact_sha256).
  absl::Status Complete(const Caller& caller, const v1::CompleteRequest& request);

  // Ends an attempt: back to PENDING if retries remain or on hand_back,
  // FAILED otherwise. Errors as for Complete.
  absl::Status Fail(const Caller& caller, const v1::FailRequest& request);

  // May the caller upload an artifact for `job_id` under this lease? Returns
  // the attempt number to record with it. NOT_FOUND/FAILED_PRECONDITION as for
  // Complete, PERMISSION_DENIED for another token's lease, INVALID_ARGUMENT if
  // the lease is for another job.
  absl::StatusOr<int32_t> CheckUpload(const Caller& caller, const std::string& lease_id,
                                      int64_t epoch, const std::string& job_id);

  // Stores a per-epoch resume state (issue 9 §1) uploaded under the job's
  // current lease (an upload with info.kind "resume") as the job's only one,
  // and records it on the job (Job.resume_sha256, resume_epochs): the next
  // lease of the job carries it, and that attempt records resumed_from_epoch.
  // Errors as CheckUpload; INVALID_ARGUMENT for a job that is not TRAIN.
  absl::Status StoreResumeState(const Caller& caller, const std::string& lease_id, int64_t epoch,
                                v1::ArtifactInfo info, const std::string& bytes);

  // Cancels pending jobs at once and asks running ones to stop (delivered on
  // their next heartbeat). Returns how many jobs were affected; NOT_FOUND for
  // an unknown id.
  absl::StatusOr<int> CancelSweep(const Caller& caller, const std::string& sweep_id);
  absl::StatusOr<int> CancelJob(const Caller& caller, const std::string& job_id);

  // Moves FAILED (and optionally CANCELLED) jobs back to PENDING.
  absl::StatusOr<int> RetryJobs(const Caller& caller, const v1::RetryJobsRequest& request);

  // Registered workers with their current number of leases.
  std::vector<v1::WorkerInfo> Workers() const;

  // Expires overdue leases, ends overdue Lease waits and removes stale
  // workers. Run periodically.
  void Tick();

  // Answers every waiting Lease call with no leases, and from now on answers
  // Lease at once (for shutdown).
  void CloseWaiters();

  // The scheduler's view of a job, or nullptr. For tests and diagnostics.
  const v1::Job* FindJob(const std::string& job_id) const;
  // The sweep, or nullptr; the jobs of a sweep, by id.
  const v1::Sweep* FindSweep(const std::string& sweep_id) const;
  std::vector<const v1::Job*> JobsOfSweep(const std::string& sweep_id) const;

  // Ids of the jobs stored (created or updated) since the last call, in
  // order, each once. The coordinator hands them to WatchSweep's feeds after
  // the batch that wrote them committed (server/sweep_watch.h).
  std::vector<std::string> TakeChangedJobs();

 private:
  struct Waiter {
    Caller caller;
    v1::LeaseRequest request;
    int64_t deadline_ms;  // monotonic
    LeaseDone done;
  };
  // Queue order: higher priority first, then older sweep, then index.
  using PendingKey = std::tuple<int32_t, int64_t, int32_t, std::string>;

  PendingKey KeyOf(const v1::Job& job) const;
  void Index(const v1::Job& job);
  void Unindex(const v1::Job& job);
  // Checks the move, persists `next` (with `attempt`, if given) conditional
  // on the stored job being the in-memory one, then makes it the in-memory
  // job. When `next` ends the job, its pending dependents are resolved in the
  // same transaction. Nothing changes if persisting fails.
  absl::Status Commit(const v1::Job& next, const v1::Attempt* attempt);
  // Closes the job's open attempt with `state` and commits `next`.
  absl::Status CommitClosingAttempt(const v1::Job& next, v1::JobState attempt_state);
  absl::Status Grant(const std::string& job_id, const std::string& worker_id,
                     v1::LeaseResponse& response);
  std::vector<std::string> PickJobs(int32_t max_jobs) const;
  // Up to `slots` groups of pending jobs to grant, in queue order: each group
  // is a head job's pack: when pack > 1, up to PackSplit(...) of the pending
  // jobs with the head's PackKey, dealt longest (max_epochs) first
  // (scheduler_packs.cc). Per-sweep concurrency counts every job of a group.
  std::vector<std::vector<std::string>> PickPacks(int32_t slots, int32_t pack) const;
  // The key a job shares with the jobs it may be packed with; "" = trains
  // alone (not TRAIN, the sweep said pack = false, or a model the packed
  // engine does not train). Cached per job.
  const std::string& PackKey(const v1::Job& job) const;
  void ServeWaiters();
  absl::StatusOr<v1::Job*> JobOfLease(const std::string& lease_id, int64_t epoch);
  // JobOfLease, and the job's worker must belong to the caller's token.
  absl::StatusOr<v1::Job*> JobOfCallersLease(const Caller& caller, const std::string& lease_id,
                                             int64_t epoch);
  // NOT_FOUND (as for a missing id) unless the caller may access the job/sweep.
  absl::Status CheckJobAccess(const Caller& caller, const std::string& job_id) const;
  absl::Status CheckSweepAccess(const Caller& caller, const std::string& sweep_id) const;
  // NOT_FOUND for an unknown worker, PERMISSION_DENIED for another token's.
  absl::StatusOr<v1::WorkerInfo*> CallersWorker(const Caller& caller, const std::string& worker_id);
  v1::LeaseVerdict Renew(const std::string& worker_id, const v1::LeaseUpdate& update);
  absl::Status RecordMetrics(const v1::Job& job,
                             const google::protobuf::RepeatedPtrField<v1::Metric>& metrics);
  absl::Status ExpireLease(const std::string& job_id);
  // Fails the job's attempt for running past its time limit.
  absl::Status TimeOut(const std::string& job_id);
  int64_t TimeLimitMs(const v1::Job& job) const;
  absl::StatusOr<int> CancelOne(const std::string& job_id);
  absl::StatusOr<std::optional<v1::SubmitSweepResponse>> ExistingSweep(
      const Caller& caller, const v1::SubmitSweepRequest& request) const;
  std::string NewId(const char* prefix);
  // Removes workers not seen for worker_expiry_ms that hold no lease.
  void ExpireWorkers();
  void AddWorker(v1::WorkerInfo worker);
  void RemoveWorker(const std::string& worker_id);
  // Appends one TRANSFORM job per TRAIN job in `jobs`.
  void AddTransformJobs(const SweepPlan& plan, std::vector<v1::Job>& jobs);
  // For `dep` as it ends: the new values of its pending dependents (input
  // checkpoint, or CANCELLED when it did not succeed). Empty if `dep` has not
  // ended.
  std::vector<v1::Job> DependentsAfter(const v1::Job& dep) const;
  // Resolves the dependents of ended jobs still blocked (at Recover).
  absl::Status ResolveMissedDependents();

  Store& store_;
  Clock& clock_;
  const SchedulerOptions options_;

  std::map<std::string, v1::Sweep> sweeps_;
  std::map<std::string, int64_t> sweep_seq_;
  int64_t next_sweep_seq_ = 0;
  std::map<std::string, v1::Job> jobs_;
  std::map<std::string, v1::Attempt> open_attempts_;  // job id -> current attempt
  std::set<PendingKey> pending_;
  std::map<std::string, std::string> leases_;  // lease id -> job id (LEASED/RUNNING)
  // Job id -> monotonic lease deadline and attempt start, for active jobs.
  std::map<std::string, int64_t> lease_deadline_;
  std::map<std::string, int64_t> attempt_started_;
  std::map<std::string, int> active_per_sweep_;
  // Job id -> the jobs that depend on it (TRANSFORM on TRAIN), so that ending
  // a job does not look at every job.
  std::map<std::string, std::set<std::string>> dependents_;
  std::map<std::string, v1::WorkerInfo> workers_;
  // (identity, name, Register request id) -> worker id, for live workers.
  std::map<std::string, std::string> registered_;
  std::map<std::string, int32_t> workers_per_identity_;
  std::deque<Waiter> waiters_;
  bool closing_ = false;  // set by CloseWaiters: no more long-polls
  std::map<std::string, v1::LeaseResponse> lease_replay_;
  std::deque<std::string> lease_replay_order_;
  mutable std::map<std::string, std::string> pack_keys_;  // job id -> PackKey
  std::vector<std::string> changed_jobs_;                 // see TakeChangedJobs
  std::set<std::string> changed_set_;
  void NoteChanged(const std::string& job_id);
  mutable std::map<std::string, int64_t> pack_epochs_;  // job id -> max_epochs (with PackKey)
};

// The pack key of an effective config (JSON object text) and dataset hash:
// the keys a pack must share, or "" when the model cannot be trained packed
// or the config is not an object.
std::string PackKeyOfConfig(const std::string& config_json, const std::string& dataset_sha256);

// max_epochs of an effective config (0 when absent): a trial's length, for
// dealing a group's trials over packs longest first.
int64_t TrialEpochsOfConfig(const std::string& config_json);

// How many of a group of `n` compatible pending jobs the next pack takes:
// the group is split into as few packs as the `pack` limit allows, as evenly
// as possible (9 with pack 8: 5 + 4, not 8 + 1); and when fewer groups are
// pending (`groups_pending`, this one included) than slots are free
// (`idle_slots`: the asking worker's and the long-polling workers'), into
// this group's share of the free slots, so that none idles while another
// trains a long pack.
size_t PackSplit(size_t n, int32_t pack, int32_t idle_slots, int32_t groups_pending);

}  // namespace qsweep
