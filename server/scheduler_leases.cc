// Scheduler: lease grants, long-polls, heartbeats, results and expiry.
#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/secrets.h"
#include "common/status_macros.h"
#include "server/job_config.h"
#include "server/job_state.h"
#include "server/scheduler.h"

namespace qsweep {

std::vector<std::string> Scheduler::PickJobs(int32_t max_jobs) const {
  std::vector<std::string> picked;
  std::map<std::string, int> extra;  // grants already picked per sweep
  for (const auto& key : pending_) {
    if (static_cast<int32_t>(picked.size()) >= max_jobs) break;
    const v1::Job& job = jobs_.at(std::get<3>(key));
    if (!job.depends_on().empty() && job.input_checkpoint_sha256().empty()) continue;  // blocked
    const int32_t limit = sweeps_.at(job.sweep_id()).max_concurrency();
    if (limit > 0) {
      auto active = active_per_sweep_.find(job.sweep_id());
      int now = (active == active_per_sweep_.end() ? 0 : active->second) + extra[job.sweep_id()];
      if (now >= limit) continue;
    }
    ++extra[job.sweep_id()];
    picked.push_back(job.id());
  }
  return picked;
}

absl::Status Scheduler::Grant(const std::string& job_id, const std::string& worker_id,
                              v1::LeaseResponse& response) {
  v1::Job next = jobs_.at(job_id);
  const int64_t now = clock_.NowMs();
  next.set_state(v1::LEASED);
  next.set_attempt(next.attempt() + 1);
  next.set_lease_epoch(next.lease_epoch() + 1);
  next.set_lease_id(absl::StrCat(next.id(), "#", next.lease_epoch(), "#", SecureRandomHex(16)));
  next.set_worker_id(worker_id);
  next.set_lease_expires_unix_ms(now + options_.lease_ttl_ms);
  next.set_cancel_requested(false);
  next.clear_progress();
  next.clear_error();
  v1::Attempt attempt;
  attempt.set_job_id(next.id());
  attempt.set_number(next.attempt());
  attempt.set_worker_id(worker_id);
  attempt.set_lease_id(next.lease_id());
  attempt.set_lease_epoch(next.lease_epoch());
  attempt.set_state(v1::LEASED);
  attempt.set_started_unix_ms(now);
  if (!next.resume_sha256().empty()) attempt.set_resumed_from_epoch(next.resume_epochs());
  QSWEEP_RETURN_IF_ERROR(Commit(next, &attempt));
  const int64_t mono = clock_.MonotonicMs();
  lease_deadline_[job_id] = mono + options_.lease_ttl_ms;
  attempt_started_[job_id] = mono;
  v1::GrantedLease* lease = response.add_leases();
  lease->set_lease_id(next.lease_id());
  lease->set_epoch(next.lease_epoch());
  lease->set_ttl_ms(options_.lease_ttl_ms);
  const v1::Job& granted = jobs_.at(job_id);
  *lease->mutable_job() = FullJob(sweeps_.at(granted.sweep_id()), granted);  // base + trial
  return absl::OkStatus();
}

absl::StatusOr<v1::WorkerInfo*> Scheduler::CallersWorker(const Caller& caller,
                                                         const std::string& worker_id) {
  auto worker = workers_.find(worker_id);
  if (worker == workers_.end())
    return absl::NotFoundError(
        absl::StrCat("worker_id '", worker_id, "' is not registered; call Register"));
  if (!ConstantTimeEquals(worker->second.token_id(), caller.token_id) || caller.token_id.empty())
    return absl::PermissionDeniedError(
        absl::StrCat("worker_id '", worker_id, "' was registered with another worker token"));
  return &worker->second;
}

void Scheduler::Lease(const Caller& caller, const v1::LeaseRequest& request, LeaseDone done) {
  auto worker = CallersWorker(caller, request.worker_id());
  if (!worker.ok()) {
    done(worker.status());
    return;
  }
  (*worker)->set_last_seen_unix_ms(clock_.NowMs());
  const std::string replay_key = absl::StrCat(caller.token_id, "/", request.request_id());
  if (!request.request_id().empty()) {
    auto replay = lease_replay_.find(replay_key);
    if (replay != lease_replay_.end()) {
      done(replay->second);
      return;
    }
  }
  v1::LeaseResponse response;
  int32_t pack_number = 0;
  for (const auto& group : PickPacks(request.max_jobs(), std::max(1, request.pack()))) {
    const int32_t number = group.size() > 1 ? ++pack_number : 0;
    for (const auto& job_id : group) {
      // Full jobs carry their config: keep the answer within the worker's
      // receive limit; the worker asks again for the rest.
      if (response.ByteSizeLong() >= kMaxPageBytes) break;
      absl::Status s = Grant(job_id, request.worker_id(), response);
      if (!s.ok()) {
        done(s);
        return;
      }
      response.mutable_leases()->rbegin()->set_pack(number);
    }
  }
  if (response.leases_size() == 0 && request.wait_ms() > 0 && !closing_) {
    const int64_t wait = std::min(request.wait_ms(), options_.max_lease_wait_ms);
    waiters_.push_back({caller, request, clock_.MonotonicMs() + wait, std::move(done)});
    return;
  }
  if (!request.request_id().empty()) {
    lease_replay_[replay_key] = response;
    lease_replay_order_.push_back(replay_key);
    while (lease_replay_order_.size() > options_.lease_replay_cache) {
      lease_replay_.erase(lease_replay_order_.front());
      lease_replay_order_.pop_front();
    }
  }
  done(std::move(response));
}

void Scheduler::ServeWaiters() {
  std::deque<Waiter> still;
  while (!waiters_.empty()) {
    Waiter w = std::move(waiters_.front());
    waiters_.pop_front();
    if (pending_.empty() || PickJobs(w.request.max_jobs()).empty()) {
      still.push_back(std::move(w));
      continue;
    }
    w.request.set_wait_ms(0);  // grant what there is now; never re-queue
    Lease(w.caller, w.request, std::move(w.done));
  }
  waiters_ = std::move(still);
}

void Scheduler::CloseWaiters() {
  closing_ = true;
  std::deque<Waiter> all = std::move(waiters_);
  waiters_.clear();
  for (auto& w : all) w.done(v1::LeaseResponse());
}

absl::StatusOr<v1::Job*> Scheduler::JobOfLease(const std::string& lease_id, int64_t epoch) {
  const size_t hash = lease_id.find('#');
  auto it = hash == std::string::npos ? jobs_.end() : jobs_.find(lease_id.substr(0, hash));
  if (it == jobs_.end()) return absl::NotFoundError("lease_id names no job");
  v1::Job& job = it->second;
  // Lease ids are secrets: never echo one, compare in constant time.
  if (!ConstantTimeEquals(job.lease_id(), lease_id) || job.lease_epoch() != epoch)
    return absl::FailedPreconditionError(absl::StrCat("the lease (epoch ", epoch, ") of job ",
                                                      job.id(), " is stale; the job is at epoch ",
                                                      job.lease_epoch()));
  return &job;
}

absl::StatusOr<v1::Job*> Scheduler::JobOfCallersLease(const Caller& caller,
                                                      const std::string& lease_id, int64_t epoch) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Job * job, JobOfLease(lease_id, epoch));
  auto worker = workers_.find(job->worker_id());
  if (worker == workers_.end() || caller.token_id.empty() ||
      !ConstantTimeEquals(worker->second.token_id(), caller.token_id))
    return absl::PermissionDeniedError(
        absl::StrCat("the lease of job ", job->id(), " is held by another worker token"));
  return job;
}

absl::StatusOr<int32_t> Scheduler::CheckUpload(const Caller& caller, const std::string& lease_id,
                                               int64_t epoch, const std::string& job_id) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Job * job, JobOfCallersLease(caller, lease_id, epoch));
  if (job->id() != job_id)
    return absl::InvalidArgumentError(absl::StrCat(
        "field 'info.job_id': '", job_id, "' is not the job of the lease (", job->id(), ")"));
  if (!IsActive(job->state()))
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job->id(), " is ", JobStateName(job->state()), "; it takes no more uploads"));
  return job->attempt();
}

absl::Status Scheduler::StoreResumeState(const Caller& caller, const std::string& lease_id,
                                         int64_t epoch, v1::ArtifactInfo info,
                                         const std::string& bytes) {
  QSWEEP_ASSIGN_OR_RETURN(int32_t attempt, CheckUpload(caller, lease_id, epoch, info.job_id()));
  const v1::Job& job = jobs_.at(info.job_id());
  if (job.kind() != v1::TRAIN)
    return absl::InvalidArgumentError(absl::StrCat(
        "field 'info.kind': job ", job.id(), " is not a TRAIN job; only those take resume states"));
  info.set_attempt(attempt);
  QSWEEP_RETURN_IF_ERROR(store_.PutResumeState(info, bytes));
  v1::Job next = job;
  next.set_resume_sha256(info.sha256());
  next.set_resume_epochs(info.epochs_done());
  return Commit(next, nullptr);
}

absl::Status Scheduler::RecordMetrics(
    const v1::Job& job, const google::protobuf::RepeatedPtrField<v1::Metric>& metrics) {
  if (metrics.empty()) return absl::OkStatus();
  return store_.AppendMetrics(job.id(), job.attempt(),
                              std::vector<v1::Metric>(metrics.begin(), metrics.end()));
}

v1::LeaseVerdict Scheduler::Renew(const std::string& worker_id, const v1::LeaseUpdate& update) {
  v1::LeaseVerdict verdict;
  verdict.set_lease_id(update.lease_id());
  verdict.set_action(v1::LOST);
  auto job_or = JobOfLease(update.lease_id(), update.epoch());
  if (!job_or.ok() || (*job_or)->worker_id() != worker_id) return verdict;
  if (!IsActive((*job_or)->state())) {
    // A heartbeat overtaken by its attempt's Complete or Fail (the worker
    // sends them from different threads): its metrics still belong to that
    // attempt. The job is over for the worker either way.
    if (absl::Status s = RecordMetrics(**job_or, update.metrics()); !s.ok()) {
      verdict.set_action(v1::NOT_STORED);
      verdict.set_error(std::string(s.message()));
    }
    return verdict;
  }
  v1::Job next = **job_or;
  if (absl::Status s = RecordMetrics(next, update.metrics()); !s.ok()) {
    verdict.set_action(v1::NOT_STORED);  // the worker resends; the lease is not renewed
    verdict.set_error(std::string(s.message()));
    return verdict;
  }
  if (next.cancel_requested()) {
    next.set_state(v1::CANCELLED);
    next.set_error("cancelled by user");
    absl::Status s = CommitClosingAttempt(next, v1::CANCELLED);
    // Not stored: the metrics were; the cancellation is delivered next time.
    verdict.set_action(s.ok() ? v1::CANCEL : v1::CONTINUE);
    return verdict;
  }
  *next.mutable_progress() = update.progress();
  next.set_lease_expires_unix_ms(clock_.NowMs() + options_.lease_ttl_ms);
  absl::Status s;
  if (next.state() == v1::LEASED) {
    next.set_state(v1::RUNNING);
    v1::Attempt attempt = open_attempts_[next.id()];
    attempt.set_state(v1::RUNNING);
    s = Commit(next, &attempt);
  } else {
    s = Commit(next, nullptr);
  }
  if (!s.ok()) {
    // The metrics are stored (AppendMetrics is idempotent, so the resent
    // ones are stored once), the renewal is not.
    verdict.set_action(v1::NOT_STORED);
    verdict.set_error(std::string(s.message()));
    return verdict;
  }
  lease_deadline_[next.id()] = clock_.MonotonicMs() + options_.lease_ttl_ms;
  verdict.set_action(v1::CONTINUE);
  return verdict;
}

absl::StatusOr<v1::HeartbeatResponse> Scheduler::Heartbeat(const Caller& caller,
                                                           const v1::HeartbeatRequest& request) {
  QSWEEP_ASSIGN_OR_RETURN(v1::WorkerInfo * worker, CallersWorker(caller, request.worker_id()));
  worker->set_last_seen_unix_ms(clock_.NowMs());
  v1::HeartbeatResponse response;
  for (const auto& update : request.updates())
    *response.add_verdicts() = Renew(request.worker_id(), update);
  return response;
}

absl::Status Scheduler::Complete(const Caller& caller, const v1::CompleteRequest& request) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Job * job,
                          JobOfCallersLease(caller, request.lease_id(), request.epoch()));
  if (job->state() == v1::SUCCEEDED) return absl::OkStatus();  // a repeated call
  if (!IsActive(job->state()))
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job->id(), " is ", JobStateName(job->state()), "; its result is not accepted"));
  QSWEEP_ASSIGN_OR_RETURN(auto linked, store_.ListArtifacts(job->id()));
  std::map<std::string, std::string> artifacts;  // of this attempt
  for (const auto& a : linked)
    if (a.attempt() == job->attempt()) artifacts[a.name()] = a.sha256();
  for (const auto& [field, name, sha] :
       {std::tuple{"best_checkpoint_sha256", "best", request.best_checkpoint_sha256()},
        std::tuple{"last_checkpoint_sha256", "last", request.last_checkpoint_sha256()}}) {
    auto it = artifacts.find(name);
    if (!sha.empty() && (it == artifacts.end() || it->second != sha))
      return absl::InvalidArgumentError(absl::StrCat("field '", field, "': ", sha, " is not the '",
                                                     name, "' artifact uploaded under this lease"));
  }
  QSWEEP_RETURN_IF_ERROR(RecordMetrics(*job, request.metrics()));
  v1::Job next = *job;
  next.set_state(v1::SUCCEEDED);
  next.mutable_artifact_sha256()->clear();
  next.mutable_artifact_sha256()->insert(artifacts.begin(), artifacts.end());
  next.mutable_final_metrics()->insert(request.final_metrics().begin(),
                                       request.final_metrics().end());
  next.set_best_checkpoint_sha256(request.best_checkpoint_sha256());
  next.set_last_checkpoint_sha256(request.last_checkpoint_sha256());
  next.set_result_json(request.result_json());
  next.set_lease_expires_unix_ms(0);
  const bool had_resume_state = !next.resume_sha256().empty();
  next.clear_resume_sha256();  // done: its resume state is not needed any more
  next.set_resume_epochs(0);
  for (v1::Report report : request.reports()) {
    report.set_job_id(next.id());
    QSWEEP_RETURN_IF_ERROR(store_.PutReport(report));
  }
  QSWEEP_RETURN_IF_ERROR(CommitClosingAttempt(next, v1::SUCCEEDED));  // and its dependents
  // After the commit: a state left behind by a failed delete is only unused.
  if (had_resume_state) store_.DeleteResumeState(next.id()).IgnoreError();
  ServeWaiters();  // a concurrency slot was freed
  return absl::OkStatus();
}

absl::Status Scheduler::Fail(const Caller& caller, const v1::FailRequest& request) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Job * job,
                          JobOfCallersLease(caller, request.lease_id(), request.epoch()));
  if (!IsActive(job->state())) return absl::OkStatus();  // a repeated call, or already ended
  QSWEEP_RETURN_IF_ERROR(RecordMetrics(*job, request.metrics()));
  v1::Job next = *job;
  next.set_lease_expires_unix_ms(0);
  v1::JobState attempt_state = v1::FAILED;
  if (request.hand_back()) {
    next.set_state(next.cancel_requested() ? v1::CANCELLED : v1::PENDING);
    next.set_error("handed back by worker: " + request.error());
    attempt_state = v1::PENDING;
  } else {
    next.set_failures(next.failures() + 1);
    next.set_error(request.error());
    next.set_state(next.cancel_requested()                 ? v1::CANCELLED
                   : next.failures() < next.max_attempts() ? v1::PENDING
                                                           : v1::FAILED);
  }
  // An attempt that failed with an error may have failed on its resume state:
  // the retry starts from scratch. A hand-back keeps it (the next attempt
  // resumes), as do an expired lease and a time limit.
  const bool drop_resume_state = !request.hand_back() && !next.resume_sha256().empty();
  if (drop_resume_state) {
    next.clear_resume_sha256();
    next.set_resume_epochs(0);
  }
  QSWEEP_RETURN_IF_ERROR(CommitClosingAttempt(next, attempt_state));
  if (drop_resume_state) store_.DeleteResumeState(next.id()).IgnoreError();
  ServeWaiters();
  return absl::OkStatus();
}

absl::Status Scheduler::ExpireLease(const std::string& job_id) {
  v1::Job next = jobs_.at(job_id);
  next.set_expiries(next.expiries() + 1);
  next.set_lease_expires_unix_ms(0);
  next.set_error(absl::StrCat("lease (epoch ", next.lease_epoch(), ") expired (worker ",
                              next.worker_id(), " stopped renewing it)"));
  next.set_state(next.cancel_requested()                   ? v1::CANCELLED
                 : next.expiries() > options_.max_expiries ? v1::FAILED
                                                           : v1::PENDING);
  return CommitClosingAttempt(next, v1::FAILED);
}

int64_t Scheduler::TimeLimitMs(const v1::Job& job) const {
  auto sweep = sweeps_.find(job.sweep_id());
  if (sweep != sweeps_.end() && sweep->second.timeout_ms() > 0) return sweep->second.timeout_ms();
  return job.kind() == v1::TRANSFORM ? options_.transform_timeout_ms : options_.train_timeout_ms;
}

absl::Status Scheduler::TimeOut(const std::string& job_id) {
  v1::Job next = jobs_.at(job_id);
  const int64_t limit = TimeLimitMs(next);
  next.set_failures(next.failures() + 1);
  next.set_lease_expires_unix_ms(0);
  next.set_error(absl::StrCat("attempt ", next.attempt(), " ran longer than its time limit of ",
                              limit / 1000, " s (the sweep's `timeout`",
                              sweeps_.at(next.sweep_id()).timeout_ms() > 0 ? "" : ", by default",
                              ") on worker ", next.worker_id()));
  next.set_state(next.cancel_requested()                 ? v1::CANCELLED
                 : next.failures() < next.max_attempts() ? v1::PENDING
                                                         : v1::FAILED);
  return CommitClosingAttempt(next, v1::FAILED);
}

void Scheduler::Tick() {
  const int64_t now = clock_.MonotonicMs();
  std::vector<std::string> expired, timed_out;
  for (const auto& [lease, job_id] : leases_) {
    auto deadline = lease_deadline_.find(job_id);
    auto started = attempt_started_.find(job_id);
    if (deadline == lease_deadline_.end() || deadline->second <= now)
      expired.push_back(job_id);
    else if (started != attempt_started_.end() &&
             now - started->second > TimeLimitMs(jobs_.at(job_id)))
      timed_out.push_back(job_id);
  }
  bool freed = false;
  for (const auto& id : expired) freed |= ExpireLease(id).ok();
  for (const auto& id : timed_out) freed |= TimeOut(id).ok();
  ExpireWorkers();
  std::deque<Waiter> still;
  std::vector<Waiter> overdue;
  for (auto& w : waiters_) {
    if (w.deadline_ms <= now)
      overdue.push_back(std::move(w));
    else
      still.push_back(std::move(w));
  }
  waiters_ = std::move(still);
  if (freed) ServeWaiters();
  for (auto& w : overdue) w.done(v1::LeaseResponse());
}

}  // namespace qsweep
