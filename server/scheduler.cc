// Scheduler: state, indexes, submission, cancellation, retries, recovery.
// Lease operations are in scheduler_leases.cc.
#include "server/scheduler.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/secrets.h"
#include "common/status_macros.h"
#include "server/job_config.h"
#include "server/job_state.h"
#include "server/sweep.h"
#include "server/sweep_limits.h"

namespace qsweep {

Scheduler::Scheduler(Store& store, Clock& clock, SchedulerOptions options)
    : store_(store), clock_(clock), options_(options) {}

// 64 random bits from the kernel: ids never collide in practice and cannot be
// guessed from earlier ones (ownership, not secrecy, protects a sweep).
std::string Scheduler::NewId(const char* prefix) {
  return absl::StrCat(prefix, SecureRandomHex(8));
}

namespace {

// The key of a Register call's idempotency: caller, worker name, request id.
std::string RegisterKey(const std::string& identity, const std::string& name,
                        const std::string& request_id) {
  return absl::StrCat(identity.size(), ":", identity, name.size(), ":", name, request_id);
}

// The identity a worker row counts against ("" in rows of older servers).
const std::string& IdentityOf(const v1::WorkerInfo& w) {
  return w.identity().empty() ? w.name() : w.identity();
}

}  // namespace

void Scheduler::AddWorker(v1::WorkerInfo worker) {
  if (!worker.register_request_id().empty())
    registered_[RegisterKey(IdentityOf(worker), worker.name(), worker.register_request_id())] =
        worker.id();
  ++workers_per_identity_[IdentityOf(worker)];
  const std::string id = worker.id();
  workers_[id] = std::move(worker);
}

void Scheduler::RemoveWorker(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  const v1::WorkerInfo& w = it->second;
  if (!w.register_request_id().empty())
    registered_.erase(RegisterKey(IdentityOf(w), w.name(), w.register_request_id()));
  if (--workers_per_identity_[IdentityOf(w)] <= 0) workers_per_identity_.erase(IdentityOf(w));
  workers_.erase(it);
}

void Scheduler::ExpireWorkers() {
  const int64_t now = clock_.NowMs();
  std::set<std::string> busy;
  for (const auto& [lease, job_id] : leases_) busy.insert(jobs_.at(job_id).worker_id());
  std::vector<std::string> stale;
  for (const auto& [id, w] : workers_)
    if (now - w.last_seen_unix_ms() > options_.worker_expiry_ms && !busy.count(id))
      stale.push_back(id);
  for (const auto& id : stale)
    if (store_.DeleteWorker(id).ok()) RemoveWorker(id);  // else: tried again at the next Tick
}

Scheduler::PendingKey Scheduler::KeyOf(const v1::Job& job) const {
  auto seq = sweep_seq_.find(job.sweep_id());
  return {-job.priority(), seq == sweep_seq_.end() ? 0 : seq->second, job.index(), job.id()};
}

void Scheduler::Index(const v1::Job& job) {
  if (!job.depends_on().empty()) dependents_[job.depends_on()].insert(job.id());
  if (job.state() == v1::PENDING) pending_.insert(KeyOf(job));
  if (IsActive(job.state())) {
    leases_[job.lease_id()] = job.id();
    ++active_per_sweep_[job.sweep_id()];
  }
}

void Scheduler::Unindex(const v1::Job& job) {
  if (job.state() == v1::PENDING) pending_.erase(KeyOf(job));
  if (IsActive(job.state())) {
    leases_.erase(job.lease_id());
    --active_per_sweep_[job.sweep_id()];
  }
}

absl::Status Scheduler::Commit(const v1::Job& next_in, const v1::Attempt* attempt) {
  auto it = jobs_.find(next_in.id());
  if (it == jobs_.end()) return absl::InternalError(absl::StrCat("no job ", next_in.id()));
  std::vector<v1::Job> nexts{next_in};
  for (auto& d : DependentsAfter(next_in)) nexts.push_back(std::move(d));
  std::vector<JobUpdate> updates;
  const int64_t now = clock_.NowMs();
  for (auto& next : nexts) {
    const v1::Job& current = jobs_.at(next.id());
    if (current.state() != next.state())
      QSWEEP_RETURN_IF_ERROR(Transition(current.state(), next.state()));
    next.set_updated_unix_ms(now);
    updates.push_back({next, current.lease_epoch(), current.state()});
  }
  QSWEEP_RETURN_IF_ERROR(store_.UpdateJobs(updates, attempt));
  for (auto& next : nexts) {
    NoteChanged(next.id());
    v1::Job& job = jobs_.at(next.id());
    Unindex(job);
    job = std::move(next);
    Index(job);
    if (!IsActive(job.state())) {
      lease_deadline_.erase(job.id());
      attempt_started_.erase(job.id());
    }
  }
  if (attempt) {
    if (IsActive(it->second.state()))
      open_attempts_[it->first] = *attempt;
    else
      open_attempts_.erase(it->first);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::CommitClosingAttempt(const v1::Job& next, v1::JobState attempt_state) {
  v1::Attempt attempt;
  auto open = open_attempts_.find(next.id());
  if (open != open_attempts_.end()) attempt = open->second;
  attempt.set_job_id(next.id());
  attempt.set_number(next.attempt());
  attempt.set_state(attempt_state);
  attempt.set_finished_unix_ms(clock_.NowMs());
  attempt.set_error(next.error());
  return Commit(next, &attempt);
}

absl::Status Scheduler::Recover() {
  QSWEEP_ASSIGN_OR_RETURN(auto workers, store_.ListWorkers());
  for (auto& w : workers) {
    // Seen now: a worker gets one whole expiry period to come back.
    w.set_last_seen_unix_ms(std::max(w.last_seen_unix_ms(), clock_.NowMs()));
    AddWorker(std::move(w));
  }
  QSWEEP_ASSIGN_OR_RETURN(auto sweeps, store_.ListSweeps());
  for (auto& s : sweeps) {
    sweep_seq_[s.id()] = next_sweep_seq_++;
    sweeps_[s.id()] = std::move(s);
  }
  QSWEEP_ASSIGN_OR_RETURN(auto jobs, store_.ListJobs({}));
  const int64_t wall = clock_.NowMs();
  const int64_t mono = clock_.MonotonicMs();
  for (auto& j : jobs) {
    if (IsActive(j.state())) {
      // At least one TTL from now; the stored wall-clock expiry is only a hint.
      const int64_t left = std::clamp(j.lease_expires_unix_ms() - wall, options_.lease_ttl_ms,
                                      2 * options_.lease_ttl_ms);
      j.set_lease_expires_unix_ms(wall + left);
      lease_deadline_[j.id()] = mono + left;
      QSWEEP_ASSIGN_OR_RETURN(auto attempts, store_.ListAttempts(j.id()));
      int64_t ran = 0;
      if (!attempts.empty()) {
        open_attempts_[j.id()] = attempts.back();
        ran = std::max<int64_t>(0, wall - attempts.back().started_unix_ms());
      }
      attempt_started_[j.id()] = mono - ran;
    }
    Index(j);
    jobs_[j.id()] = std::move(j);
  }
  return ResolveMissedDependents();
}

absl::Status Scheduler::ResolveMissedDependents() {
  std::vector<std::string> ended;
  for (const auto& [dep, dependents] : dependents_) {
    auto it = jobs_.find(dep);
    if (it != jobs_.end() && !DependentsAfter(it->second).empty()) ended.push_back(dep);
  }
  for (const auto& dep : ended) {
    for (const v1::Job& next : DependentsAfter(jobs_.at(dep)))
      QSWEEP_RETURN_IF_ERROR(Commit(next, nullptr));
  }
  return absl::OkStatus();
}

std::string SweepIdempotencyKey(const Caller& caller, const v1::SubmitSweepRequest& request) {
  if (!request.idempotency_key().empty())
    return absl::StrCat(caller.owner, "/", request.idempotency_key());
  if (!request.request_id().empty())
    return absl::StrCat(caller.owner, "/request:", request.request_id());
  return "";
}

absl::Status Scheduler::CheckSweepAccess(const Caller& caller, const std::string& sweep_id) const {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end() || !caller.MayAccess(it->second.owner()))
    return absl::NotFoundError(absl::StrCat("no sweep '", sweep_id, "'"));
  return absl::OkStatus();
}

absl::Status Scheduler::CheckJobAccess(const Caller& caller, const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !CheckSweepAccess(caller, it->second.sweep_id()).ok())
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return absl::OkStatus();
}

// The sweep an earlier submission with the same idempotency key (of this
// caller) stored, answered as `existing`; nullopt when there is none.
absl::StatusOr<std::optional<v1::SubmitSweepResponse>> Scheduler::ExistingSweep(
    const Caller& caller, const v1::SubmitSweepRequest& request) const {
  const std::string key = SweepIdempotencyKey(caller, request);
  if (key.empty()) return std::nullopt;
  auto existing = store_.FindSweepByIdempotencyKey(key);
  if (absl::IsNotFound(existing.status())) return std::nullopt;
  if (!existing.ok()) return existing.status();
  v1::SubmitSweepResponse response;
  *response.mutable_sweep() = ListedSweep(*existing);
  response.set_existing(true);
  return response;
}

absl::StatusOr<v1::SubmitSweepResponse> Scheduler::SubmitSweep(
    const Caller& caller, const v1::SubmitSweepRequest& request,
    const std::vector<std::string>& dataset_sha256) {
  QSWEEP_ASSIGN_OR_RETURN(std::optional<v1::SubmitSweepResponse> existing,
                          ExistingSweep(caller, request));
  if (existing) return *std::move(existing);
  const std::string source = request.source_name().empty() ? "sweep_toml" : request.source_name();
  auto plan = ExpandSweepForService(request.sweep_toml(), source);
  if (!plan.ok()) return absl::InvalidArgumentError(plan.status().message());
  return SubmitSweep(caller, request, *plan, dataset_sha256);
}

absl::StatusOr<v1::SubmitSweepResponse> Scheduler::SubmitSweep(
    const Caller& caller, const v1::SubmitSweepRequest& request, const SweepPlan& expanded,
    const std::vector<std::string>& dataset_sha256) {
  QSWEEP_ASSIGN_OR_RETURN(std::optional<v1::SubmitSweepResponse> existing,
                          ExistingSweep(caller, request));
  if (existing) return *std::move(existing);
  const std::string key = SweepIdempotencyKey(caller, request);
  v1::SubmitSweepResponse response;
  const SweepPlan* plan = &expanded;
  if (!dataset_sha256.empty() && dataset_sha256.size() != plan->trials.size()) {
    return absl::InternalError(absl::StrCat("got ", dataset_sha256.size(), " dataset hashes for ",
                                            plan->trials.size(), " trials"));
  }

  v1::Sweep sweep;
  sweep.set_id(NewId("sw-"));
  sweep.set_name(!request.name().empty() ? request.name() : plan->name);
  sweep.set_owner(caller.owner);
  sweep.set_idempotency_key(key);
  sweep.set_source_toml(request.sweep_toml());
  sweep.set_max_concurrency(plan->max_concurrency);
  sweep.set_retries(plan->retries);
  sweep.set_timeout_ms(plan->timeout_s * 1000);
  sweep.set_priority(plan->priority);
  sweep.set_no_pack(!plan->pack);
  sweep.set_created_unix_ms(clock_.NowMs());
  // The base config is stored once, here; each job stores only its trial.
  sweep.set_base_config_json(plan->base.dump());
  std::vector<v1::Job> jobs;
  for (size_t i = 0; i < plan->trials.size(); ++i) {
    v1::Job j;
    j.set_id(absl::StrCat(sweep.id(), "-", i));
    j.set_sweep_id(sweep.id());
    j.set_index(static_cast<int32_t>(i));
    j.set_kind(v1::TRAIN);
    j.set_state(v1::PENDING);
    j.set_trial_json(plan->trials[i].dump());
    if (!dataset_sha256.empty()) j.set_dataset_sha256(dataset_sha256[i]);
    j.set_priority(plan->priority);
    j.set_max_attempts(1 + plan->retries);
    j.set_created_unix_ms(sweep.created_unix_ms());
    j.set_updated_unix_ms(sweep.created_unix_ms());
    jobs.push_back(std::move(j));
  }
  if (plan->transform) AddTransformJobs(*plan, jobs);
  sweep.set_num_jobs(static_cast<int32_t>(jobs.size()));
  QSWEEP_RETURN_IF_ERROR(store_.CreateSweep(sweep, jobs));
  sweep_seq_[sweep.id()] = next_sweep_seq_++;
  sweeps_[sweep.id()] = sweep;
  for (auto& j : jobs) {
    NoteChanged(j.id());
    Index(j);
    jobs_[j.id()] = std::move(j);
  }
  *response.mutable_sweep() = ListedSweep(std::move(sweep));
  ServeWaiters();
  return response;
}

absl::StatusOr<v1::SubmitTransformResponse> Scheduler::SubmitTransform(
    const Caller& caller, const v1::SubmitTransformRequest& request) {
  QSWEEP_RETURN_IF_ERROR(CheckJobAccess(caller, request.from_job_id()));
  auto from = jobs_.find(request.from_job_id());
  if (from->second.kind() != v1::TRAIN)
    return absl::InvalidArgumentError(
        absl::StrCat("field 'from_job_id': job ", from->first, " is not a TRAIN job"));
  v1::SubmitTransformResponse response;
  const std::string key =
      request.request_id().empty()
          ? ""
          : absl::StrCat(caller.owner, "/transform-request:", request.request_id());
  if (!key.empty()) {
    if (auto existing = store_.FindSweepByIdempotencyKey(key); existing.ok()) {
      *response.mutable_sweep() = ListedSweep(*existing);
      if (auto job = jobs_.find(existing->id() + "-0"); job != jobs_.end())
        *response.mutable_job() = job->second;
      return response;
    }
  }
  const std::string from_config =
      EffectiveConfigJson(sweeps_.at(from->second.sweep_id()), from->second);
  const nlohmann::json config = nlohmann::json::parse(from_config, nullptr, false);
  const nlohmann::json model =
      config.is_object() ? config.value("model", nlohmann::json()) : nullptr;
  const int64_t batch = config.is_object() ? config.value("batch_size", int64_t{1}) : 1;
  const std::string source = request.source_name().empty() ? "config_toml" : request.source_name();
  QSWEEP_RETURN_IF_ERROR(ValidateTransformConfig(request.config_toml(), source, model, batch));
  QSWEEP_RETURN_IF_ERROR(CheckTransformConfigLimits(request.config_toml(), source));

  v1::Sweep sweep;
  sweep.set_id(NewId("sw-"));
  sweep.set_name(absl::StrCat("transform of ", from->first));
  sweep.set_owner(caller.owner);
  sweep.set_idempotency_key(key);
  sweep.set_source_toml(request.config_toml());  // the job's transform_toml
  sweep.set_base_config_json(from_config);       // its config (trial_json adds nothing)
  sweep.set_created_unix_ms(clock_.NowMs());
  sweep.set_num_jobs(1);
  v1::Job job;
  job.set_id(sweep.id() + "-0");
  job.set_sweep_id(sweep.id());
  job.set_kind(v1::TRANSFORM);
  job.set_state(v1::PENDING);
  job.set_trial_json(from->second.trial_json());
  job.set_dataset_sha256(from->second.dataset_sha256());
  job.set_max_attempts(1);
  job.set_depends_on(from->first);
  job.set_transform_json(nlohmann::json{{"fine_tune_epochs", request.fine_tune_epochs()}}.dump());
  job.set_created_unix_ms(sweep.created_unix_ms());
  if (from->second.state() == v1::SUCCEEDED)
    job.set_input_checkpoint_sha256(from->second.best_checkpoint_sha256());
  const bool dead = IsTerminal(from->second.state()) && job.input_checkpoint_sha256().empty();
  if (dead) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", from->first, " is ", JobStateName(from->second.state()),
                     from->second.state() == v1::SUCCEEDED ? " but has no best checkpoint" : ""));
  }
  QSWEEP_RETURN_IF_ERROR(store_.CreateSweep(sweep, {job}));
  sweep_seq_[sweep.id()] = next_sweep_seq_++;
  sweeps_[sweep.id()] = sweep;
  NoteChanged(job.id());
  Index(job);
  jobs_[job.id()] = job;
  *response.mutable_sweep() = ListedSweep(sweep);
  *response.mutable_job() = job;
  ServeWaiters();
  return response;
}

void Scheduler::AddTransformJobs(const SweepPlan& plan, std::vector<v1::Job>& jobs) {
  const size_t trains = jobs.size();
  const std::string options = nlohmann::json{{"fine_tune_epochs", plan.fine_tune_epochs}}.dump();
  for (size_t i = 0; i < trains; ++i) {
    v1::Job t = jobs[i];
    t.set_index(static_cast<int32_t>(trains + i));
    t.set_id(absl::StrCat(t.sweep_id(), "-", t.index()));
    t.set_kind(v1::TRANSFORM);
    t.set_depends_on(jobs[i].id());  // transform_toml: the sweep's source_toml
    t.set_transform_json(options);
    jobs.push_back(std::move(t));
  }
}

std::vector<v1::Job> Scheduler::DependentsAfter(const v1::Job& dep) const {
  std::vector<v1::Job> out;
  if (!IsTerminal(dep.state())) return out;
  auto dependents = dependents_.find(dep.id());
  if (dependents == dependents_.end()) return out;
  for (const std::string& id : dependents->second) {
    const v1::Job& job = jobs_.at(id);
    if (job.state() != v1::PENDING || !job.input_checkpoint_sha256().empty()) continue;
    v1::Job next = job;
    if (dep.state() == v1::SUCCEEDED && !dep.best_checkpoint_sha256().empty()) {
      next.set_input_checkpoint_sha256(dep.best_checkpoint_sha256());
    } else {
      next.set_state(v1::CANCELLED);
      next.set_error(
          dep.state() == v1::SUCCEEDED
              ? absl::StrCat("job ", dep.id(), " produced no best checkpoint")
              : absl::StrCat("job ", dep.id(), " it depends on is ", JobStateName(dep.state())));
    }
    out.push_back(std::move(next));
  }
  return out;
}

absl::StatusOr<v1::RegisterResponse> Scheduler::Register(const Caller& caller,
                                                         const v1::RegisterRequest& request) {
  // Workers are counted and remembered per worker token.
  const std::string& identity = caller.token_id.empty() ? request.name() : caller.token_id;
  v1::RegisterResponse response;
  response.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  response.set_lease_ttl_ms(options_.lease_ttl_ms);
  if (!request.request_id().empty()) {
    auto it = registered_.find(RegisterKey(identity, request.name(), request.request_id()));
    if (it != registered_.end()) {
      workers_.at(it->second).set_last_seen_unix_ms(clock_.NowMs());
      response.set_worker_id(it->second);  // a retried call: the same worker
      return response;
    }
  }
  auto mine = workers_per_identity_.find(identity);
  if ((mine != workers_per_identity_.end() && mine->second >= options_.max_workers_per_identity) ||
      static_cast<int64_t>(workers_.size()) >= options_.max_workers)
    ExpireWorkers();  // make room from stale workers first
  mine = workers_per_identity_.find(identity);
  if (mine != workers_per_identity_.end() && mine->second >= options_.max_workers_per_identity)
    return absl::ResourceExhaustedError(
        absl::StrCat("caller '", identity, "' has ", mine->second,
                     " registered workers; the limit is ", options_.max_workers_per_identity,
                     " (workers unseen for ", options_.worker_expiry_ms / 1000, " s are removed)"));
  if (static_cast<int64_t>(workers_.size()) >= options_.max_workers)
    return absl::ResourceExhaustedError(absl::StrCat("the server has ", workers_.size(),
                                                     " registered workers; the limit is ",
                                                     options_.max_workers));
  v1::WorkerInfo w;
  w.set_id(NewId("w-"));
  w.set_name(request.name());
  w.set_device(request.device());
  w.set_slots(request.slots());
  *w.mutable_devices() = request.devices();
  w.set_token_id(caller.token_id);
  w.set_registered_unix_ms(clock_.NowMs());
  w.set_last_seen_unix_ms(clock_.NowMs());
  w.set_register_request_id(request.request_id());
  w.set_identity(identity);
  QSWEEP_RETURN_IF_ERROR(store_.PutWorker(w));
  response.set_worker_id(w.id());
  AddWorker(std::move(w));
  return response;
}

absl::StatusOr<int> Scheduler::CancelOne(const std::string& job_id) {
  const v1::Job& job = jobs_.at(job_id);
  if (job.state() == v1::PENDING) {
    v1::Job next = job;
    next.set_state(v1::CANCELLED);
    next.set_error("cancelled before it started");
    QSWEEP_RETURN_IF_ERROR(Commit(next, nullptr));  // resolves its dependents too
    return 1;
  }
  if (IsActive(job.state()) && !job.cancel_requested()) {
    v1::Job next = job;
    next.set_cancel_requested(true);
    QSWEEP_RETURN_IF_ERROR(Commit(next, nullptr));
    return 1;
  }
  return 0;
}

absl::StatusOr<int> Scheduler::CancelJob(const Caller& caller, const std::string& job_id) {
  QSWEEP_RETURN_IF_ERROR(CheckJobAccess(caller, job_id));
  return CancelOne(job_id);
}

absl::StatusOr<int> Scheduler::CancelSweep(const Caller& caller, const std::string& sweep_id) {
  QSWEEP_RETURN_IF_ERROR(CheckSweepAccess(caller, sweep_id));
  int n = 0;
  for (const auto& [id, job] : jobs_) {
    if (job.sweep_id() != sweep_id) continue;
    QSWEEP_ASSIGN_OR_RETURN(int c, CancelOne(id));
    n += c;
  }
  return n;
}

absl::StatusOr<int> Scheduler::RetryJobs(const Caller& caller,
                                         const v1::RetryJobsRequest& request) {
  std::vector<std::string> ids(request.job_ids().begin(), request.job_ids().end());
  for (const auto& id : ids) QSWEEP_RETURN_IF_ERROR(CheckJobAccess(caller, id));
  if (ids.empty()) {
    QSWEEP_RETURN_IF_ERROR(CheckSweepAccess(caller, request.sweep_id()));
    for (const auto& [id, job] : jobs_)
      if (job.sweep_id() == request.sweep_id()) ids.push_back(id);
  }
  for (const auto& id : ids)
    if (!jobs_.count(id)) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  // A job before the jobs that depend on it (they are in the same or a later
  // sweep, at a higher index): whether a dependent is retried depends on the
  // state its dependency is left in. Job ids do not sort this way ("-10" <
  // "-2").
  std::sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
    const v1::Job &ja = jobs_.at(a), &jb = jobs_.at(b);
    return std::tuple(sweep_seq_[ja.sweep_id()], ja.index(), a) <
           std::tuple(sweep_seq_[jb.sweep_id()], jb.index(), b);
  });
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  int n = 0;
  for (const auto& id : ids) {
    auto it = jobs_.find(id);
    const v1::JobState s = it->second.state();
    const bool blocked_dependent = s == v1::CANCELLED && !it->second.depends_on().empty() &&
                                   !IsTerminal(jobs_.at(it->second.depends_on()).state());
    if (s != v1::FAILED && !(s == v1::CANCELLED && request.include_cancelled()) &&
        !blocked_dependent)
      continue;
    v1::Job next = it->second;
    next.set_state(v1::PENDING);
    next.set_failures(0);
    next.set_expiries(0);
    next.set_cancel_requested(false);
    next.clear_error();
    if (!next.depends_on().empty() && jobs_.at(next.depends_on()).state() != v1::SUCCEEDED)
      next.clear_input_checkpoint_sha256();
    QSWEEP_RETURN_IF_ERROR(Commit(next, nullptr));
    ++n;
  }
  // A dependent retried while its dependency stays ended is resolved now, not
  // left blocked.
  QSWEEP_RETURN_IF_ERROR(ResolveMissedDependents());
  if (n > 0) ServeWaiters();
  return n;
}

std::vector<v1::WorkerInfo> Scheduler::Workers() const {
  std::map<std::string, int> busy;
  for (const auto& [lease, job_id] : leases_) ++busy[jobs_.at(job_id).worker_id()];
  std::vector<v1::WorkerInfo> out;
  for (const auto& [id, w] : workers_) {
    out.push_back(w);
    out.back().set_busy_slots(busy[id]);
    out.back().clear_register_request_id();
    out.back().clear_identity();
  }
  return out;
}

const v1::Job* Scheduler::FindJob(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const v1::Sweep* Scheduler::FindSweep(const std::string& sweep_id) const {
  auto it = sweeps_.find(sweep_id);
  return it == sweeps_.end() ? nullptr : &it->second;
}

std::vector<const v1::Job*> Scheduler::JobsOfSweep(const std::string& sweep_id) const {
  // Job ids are "<sweep id>-<index>": the sweep's jobs are one range of jobs_.
  const std::string prefix = sweep_id + "-";
  std::vector<const v1::Job*> out;
  for (auto it = jobs_.lower_bound(prefix);
       it != jobs_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    if (it->second.sweep_id() == sweep_id) out.push_back(&it->second);
  return out;
}

void Scheduler::NoteChanged(const std::string& job_id) {
  if (changed_set_.insert(job_id).second) changed_jobs_.push_back(job_id);
}

std::vector<std::string> Scheduler::TakeChangedJobs() {
  changed_set_.clear();
  return std::exchange(changed_jobs_, {});
}

}  // namespace qsweep
