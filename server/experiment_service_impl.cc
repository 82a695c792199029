#include "server/experiment_service_impl.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/artifact_streams.h"
#include "server/auth.h"
#include "server/dataset_artifacts.h"
#include "server/grpc_status_util.h"
#include "server/job_metrics.h"
#include "server/job_query.h"
#include "server/paged_queries.h"
#include "server/strand_reactor.h"
#include "server/sweep.h"
#include "server/sweep_limits.h"
#include "server/validation.h"

namespace qsweep {
namespace {

// Finishes `ctx`'s default reactor with `s`.
grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

#define QSWEEP_METHOD(name) "/qsweep.v1.Experiments/" #name

// Lease ids are secrets between the server and the worker holding the lease.
void Redact(v1::Job& job) { job.clear_lease_id(); }
void Redact(v1::Attempt& attempt) { attempt.clear_lease_id(); }

// The sweep, or NOT_FOUND (the store's own words for a missing one) when the
// caller may not see it: another user's sweep is indistinguishable from none.
absl::StatusOr<v1::Sweep> AccessibleSweep(Store& store, const Caller& caller,
                                          const std::string& sweep_id) {
  auto sweep = store.GetSweep(sweep_id);
  if (sweep.ok() && !caller.MayAccess(sweep->owner()))
    return absl::NotFoundError(absl::StrCat("no sweep '", sweep_id, "'"));
  return sweep;
}

absl::StatusOr<v1::Job> AccessibleJob(Store& store, const Caller& caller,
                                      const std::string& job_id) {
  auto job = store.GetJob(job_id);
  if (job.ok() && !AccessibleSweep(store, caller, job->sweep_id()).ok())
    return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return job;
}

template <typename Response>
class ErrorWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit ErrorWriter(const absl::Status& s) { this->Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

ExperimentServiceImpl::ExperimentServiceImpl(Coordinator& coordinator, Store& store,
                                             Authenticator& auth, WatchHub& watch_hub,
                                             WorkPool& pool, WorkPool& watch_pool,
                                             ExperimentServiceOptions options)
    : coordinator_(coordinator),
      store_(store),
      auth_(auth),
      watch_hub_(watch_hub),
      pool_(pool),
      watch_pool_(watch_pool),
      options_(std::move(options)) {}

grpc::ServerUnaryReactor* ExperimentServiceImpl::SubmitSweep(grpc::CallbackServerContext* ctx,
                                                             const v1::SubmitSweepRequest* request,
                                                             v1::SubmitSweepResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(SubmitSweep), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  // Expansion and datasets on the pool; only the store writes on the strand.
  pool_.Post([this, caller = *caller, request, response, reactor] {
    auto prepared = PrepareSweep(caller, *request);
    if (!prepared.ok()) {
      reactor->Finish(ToGrpcStatus(prepared.status()));
      return;
    }
    auto ready = std::make_shared<PreparedSweep>(std::move(*prepared));
    FinishReactorOnStrand(
        coordinator_, reactor, [caller, request, response, ready](Scheduler& scheduler) {
          if (ready->repeated)  // answered with the earlier sweep
            return MoveInto(scheduler.SubmitSweep(caller, *request), response);
          return MoveInto(
              scheduler.SubmitSweep(caller, *request, ready->plan, ready->dataset_sha256),
              response);
        });
  });
  return reactor;
}

absl::StatusOr<ExperimentServiceImpl::PreparedSweep> ExperimentServiceImpl::PrepareSweep(
    const Caller& caller, const v1::SubmitSweepRequest& request) {
  PreparedSweep prepared;
  const std::string key = SweepIdempotencyKey(caller, request);
  if (!key.empty() && store_.FindSweepByIdempotencyKey(key).ok()) {
    prepared.repeated = true;
    return prepared;
  }
  const std::string source = request.source_name().empty() ? "sweep_toml" : request.source_name();
  auto plan = ExpandSweepForService(request.sweep_toml(), source);  // the one expansion
  if (!plan.ok()) return absl::InvalidArgumentError(plan.status().message());
  prepared.plan = std::move(*plan);
  QSWEEP_ASSIGN_OR_RETURN(prepared.dataset_sha256, ServeSweepDatasets(prepared.plan));
  return prepared;
}

absl::StatusOr<std::vector<std::string>> ExperimentServiceImpl::ServeSweepDatasets(
    const SweepPlan& plan) {
  if (!options_.serve_datasets) return std::vector<std::string>();
  DatasetServeOptions options;
  options.data_dir = options_.data_dir;
  // One config per distinct dataset request: trials' configs are not all
  // held at once (the base config may be large).
  std::vector<nlohmann::json> distinct;
  std::map<std::string, size_t> index_of_key;
  std::vector<size_t> index_of_trial;
  for (size_t i = 0; i < plan.trials.size(); ++i) {
    nlohmann::json config = TrialConfig(plan, i);
    QSWEEP_ASSIGN_OR_RETURN(std::string key, DatasetKeyOf(config));
    auto [it, added] = index_of_key.try_emplace(key, distinct.size());
    if (added) distinct.push_back(std::move(config));
    index_of_trial.push_back(it->second);
  }
  const DatasetPreparer& prepare =
      options_.dataset_preparer ? options_.dataset_preparer : DatasetPreparer(ServeDatasets);
  QSWEEP_ASSIGN_OR_RETURN(ServedDatasets served, prepare(distinct, store_, options));
  if (served.sha256.size() != distinct.size())
    return absl::InternalError(absl::StrCat("the dataset preparer returned ", served.sha256.size(),
                                            " hashes for ", distinct.size(), " datasets"));
  std::vector<std::string> hashes;
  hashes.reserve(index_of_trial.size());
  for (size_t i : index_of_trial) hashes.push_back(served.sha256[i]);
  return hashes;
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetSweep(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSweepRequest* request,
                                                          v1::SweepSummary* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(GetSweep), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  if (auto sweep = AccessibleSweep(store_, *caller, request->sweep_id()); !sweep.ok())
    return Done(ctx, sweep.status());
  auto summary = LoadSummary(store_, request->sweep_id());
  if (summary.ok()) *response = std::move(*summary);
  return Done(ctx, summary.status());
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::ListSweeps(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSweepsRequest* request,
                                                            v1::ListSweepsResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(ListSweeps), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return Done(ctx, MoveInto(ListSweepsPage(store_, *caller, *request), response));
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                          const v1::ListJobsRequest* request,
                                                          v1::ListJobsResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(ListJobs), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  if (auto sweep = AccessibleSweep(store_, *caller, request->sweep_id()); !sweep.ok())
    return Done(ctx, sweep.status());
  JobFilter filter;
  filter.sweep_id = request->sweep_id();
  auto jobs = store_.ListJobs(filter);
  if (!jobs.ok()) return Done(ctx, jobs.status());
  auto page = QueryJobs(std::move(*jobs), *request);
  if (page.ok()) {
    *response = std::move(*page);
    for (auto& j : *response->mutable_jobs()) Redact(j);
  }
  return Done(ctx, page.status());
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                        const v1::GetJobRequest* request,
                                                        v1::GetJobResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(GetJob), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  if (auto job = AccessibleJob(store_, *caller, request->job_id()); !job.ok())
    return Done(ctx, job.status());
  auto job = LoadFullJob(store_, request->job_id());  // with its config
  if (!job.ok()) return Done(ctx, job.status());
  auto attempts = store_.ListAttempts(request->job_id());
  auto artifacts = store_.ListArtifacts(request->job_id());
  if (!attempts.ok()) return Done(ctx, attempts.status());
  if (!artifacts.ok()) return Done(ctx, artifacts.status());
  Redact(*job);
  *response->mutable_job() = std::move(*job);
  for (auto& a : *attempts) {
    Redact(a);
    *response->add_attempts() = std::move(a);
  }
  for (auto& a : *artifacts) *response->add_artifacts() = std::move(a);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerWriteReactor<v1::WatchSweepEvent>* ExperimentServiceImpl::WatchSweep(
    grpc::CallbackServerContext* ctx, const v1::WatchSweepRequest* request) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(WatchSweep), auth_);
  if (!caller.ok()) return new ErrorWriter<v1::WatchSweepEvent>(caller.status());
  if (auto s = Validate(*request); !s.ok()) return new ErrorWriter<v1::WatchSweepEvent>(s);
  if (auto sweep = AccessibleSweep(store_, *caller, request->sweep_id()); !sweep.ok())
    return new ErrorWriter<v1::WatchSweepEvent>(sweep.status());
  return new WatchReactor(watch_hub_, watch_pool_, request->sweep_id(), request->page_size());
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::CancelSweep(grpc::CallbackServerContext* ctx,
                                                             const v1::CancelSweepRequest* request,
                                                             v1::CancelResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(CancelSweep), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx,
                        [caller = *caller, request, response](Scheduler& scheduler) {
                          auto n = scheduler.CancelSweep(caller, request->sweep_id());
                          if (n.ok()) response->set_cancelled(*n);
                          return n.status();
                        });
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                           const v1::CancelJobRequest* request,
                                                           v1::CancelResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(CancelJob), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx,
                        [caller = *caller, request, response](Scheduler& scheduler) {
                          auto n = scheduler.CancelJob(caller, request->job_id());
                          if (n.ok()) response->set_cancelled(*n);
                          return n.status();
                        });
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::RetryJobs(grpc::CallbackServerContext* ctx,
                                                           const v1::RetryJobsRequest* request,
                                                           v1::RetryJobsResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(RetryJobs), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx,
                        [caller = *caller, request, response](Scheduler& scheduler) {
                          auto n = scheduler.RetryJobs(caller, *request);
                          if (n.ok()) response->set_retried(*n);
                          return n.status();
                        });
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetMetrics(grpc::CallbackServerContext* ctx,
                                                            const v1::GetMetricsRequest* request,
                                                            v1::GetMetricsResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(GetMetrics), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  auto job = AccessibleJob(store_, *caller, request->job_id());
  if (!job.ok()) return Done(ctx, job.status());
  auto metrics = JobMetrics(store_, *job, request->name());  // across resumed attempts
  if (!metrics.ok()) return Done(ctx, metrics.status());
  for (auto& m : *metrics) *response->add_metrics() = std::move(m);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::SubmitTransform(
    grpc::CallbackServerContext* ctx, const v1::SubmitTransformRequest* request,
    v1::SubmitTransformResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(SubmitTransform), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(
      coordinator_, ctx, [caller = *caller, request, response](Scheduler& scheduler) {
        absl::Status s = MoveInto(scheduler.SubmitTransform(caller, *request), response);
        Redact(*response->mutable_job());
        return s;
      });
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::GetReport(grpc::CallbackServerContext* ctx,
                                                           const v1::GetReportRequest* request,
                                                           v1::Report* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(GetReport), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  if (auto job = AccessibleJob(store_, *caller, request->job_id()); !job.ok())
    return Done(ctx, job.status());
  auto report = store_.GetReport(request->job_id(), request->pass_name());
  if (report.ok()) *response = std::move(*report);
  return Done(ctx, report.status());
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* ExperimentServiceImpl::DownloadArtifact(
    grpc::CallbackServerContext* ctx, const v1::DownloadArtifactRequest* request) {
  using Error = ErrorWriter<v1::ArtifactChunk>;
  auto caller = Authorize(ctx, QSWEEP_METHOD(DownloadArtifact), auth_);
  if (!caller.ok()) return new Error(caller.status());
  if (auto s = Validate(*request); !s.ok()) return new Error(s);
  // An artifact may be hundreds of MB: read on the pool, then stream.
  auto* writer = new BlobWriteReactor();
  pool_.Post([this, caller = *caller, request, writer] {
    auto info = FindDownload(caller, *request);
    if (!info.ok()) {
      writer->Fail(info.status());
      return;
    }
    auto bytes = store_.GetArtifactBytes(info->sha256());
    if (!bytes.ok()) {
      writer->Fail(bytes.status());
      return;
    }
    info->set_size_bytes(static_cast<int64_t>(bytes->size()));
    writer->Send(std::move(*info), std::move(*bytes));
  });
  return writer;
}

absl::StatusOr<v1::ArtifactInfo> ExperimentServiceImpl::FindDownload(
    const Caller& caller, const v1::DownloadArtifactRequest& request) {
  if (!request.job_id().empty()) {
    QSWEEP_RETURN_IF_ERROR(AccessibleJob(store_, caller, request.job_id()).status());
  }
  if (request.sha256().empty()) return store_.FindArtifact(request.job_id(), request.name());
  v1::ArtifactInfo info;
  if (caller.is_admin()) {
    info.set_sha256(request.sha256());
    return info;
  }
  // Users reach content only through a job of theirs that links it.
  QSWEEP_ASSIGN_OR_RETURN(auto linked, store_.ListArtifacts(request.job_id()));
  auto it = std::find_if(linked.begin(), linked.end(),
                         [&](const v1::ArtifactInfo& a) { return a.sha256() == request.sha256(); });
  if (request.job_id().empty() || it == linked.end())
    return absl::NotFoundError(absl::StrCat("no artifact ", request.sha256(), " linked to job '",
                                            request.job_id(),
                                            "' (users download by job_id and name, or by sha256 "
                                            "with the job_id that links it)"));
  return *it;
}

grpc::ServerUnaryReactor* ExperimentServiceImpl::ListWorkers(grpc::CallbackServerContext* ctx,
                                                             const v1::ListWorkersRequest* request,
                                                             v1::ListWorkersResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(ListWorkers), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  return FinishOnStrand(coordinator_, ctx, [response](Scheduler& scheduler) {
    for (auto& w : scheduler.Workers()) {
      w.clear_token_id();
      *response->add_workers() = std::move(w);
    }
    return absl::OkStatus();
  });
}

}  // namespace qsweep
