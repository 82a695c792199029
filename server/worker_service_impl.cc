#include "server/worker_service_impl.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "server/artifact_streams.h"
#include "server/grpc_status_util.h"
#include "server/strand_reactor.h"
#include "server/validation.h"

namespace qsweep {
namespace {

#define QSWEEP_METHOD(name) "/qsweep.v1.Workers/" #name

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

class ErrorWriter final : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
 public:
  explicit ErrorWriter(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

class ErrorReader final : public grpc::ServerReadReactor<v1::ArtifactChunk> {
 public:
  explicit ErrorReader(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

// OK if a job now leased to a worker of the caller's token needs `sha256` (its
// prepared dataset, its input checkpoint or its resume state). Read from the
// store, which the scheduler updates before its own state, so no grant is
// missed. Returns the job's id when `sha256` is its resume state (kept apart
// from the artifacts), else "".
absl::StatusOr<std::string> CheckFetch(Store& store, const Caller& caller,
                                       const std::string& sha256) {
  JobFilter active;
  active.states = {v1::LEASED, v1::RUNNING};
  auto jobs = store.ListJobs(active);
  if (!jobs.ok()) return jobs.status();
  auto workers = store.ListWorkers();
  if (!workers.ok()) return workers.status();
  std::set<std::string> mine;
  for (const auto& w : *workers)
    if (!caller.token_id.empty() && w.token_id() == caller.token_id) mine.insert(w.id());
  for (const auto& j : *jobs) {
    if (!mine.count(j.worker_id())) continue;
    if (j.dataset_sha256() == sha256 || j.input_checkpoint_sha256() == sha256) return std::string();
    if (j.resume_sha256() == sha256) return j.id();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("artifact ", sha256, " is not an input of any job leased to this worker token"));
}

}  // namespace

WorkerServiceImpl::WorkerServiceImpl(Coordinator& coordinator, Store& store, Authenticator& auth,
                                     WorkPool& pool)
    : coordinator_(coordinator), store_(store), auth_(auth), pool_(pool) {}

grpc::ServerUnaryReactor* WorkerServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                      const v1::RegisterRequest* request,
                                                      v1::RegisterResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(Register), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx,
                        [caller = *caller, request, response](Scheduler& scheduler) {
                          return MoveInto(scheduler.Register(caller, *request), response);
                        });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Lease(grpc::CallbackServerContext* ctx,
                                                   const v1::LeaseRequest* request,
                                                   v1::LeaseResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(Lease), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  Coordinator& coordinator = coordinator_;
  coordinator_.Post([&coordinator, caller = *caller, request, response,
                     reactor](Scheduler& scheduler) {
    scheduler.Lease(caller, *request,
                    [&coordinator, response, reactor](absl::StatusOr<v1::LeaseResponse> result) {
                      // Called on the strand (now, or later for a long-poll): the grants
                      // are answered once they are durable.
                      absl::Status status = result.status();
                      if (result.ok()) *response = std::move(*result);
                      coordinator.Ack([response, reactor, status](const absl::Status& committed) {
                        if (!committed.ok()) response->Clear();
                        reactor->Finish(ToGrpcStatus(committed.ok() ? status : committed));
                      });
                    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(Heartbeat), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx,
                        [caller = *caller, request, response](Scheduler& scheduler) {
                          return MoveInto(scheduler.Heartbeat(caller, *request), response);
                        });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Complete(grpc::CallbackServerContext* ctx,
                                                      const v1::CompleteRequest* request,
                                                      v1::CompleteResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(Complete), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  Coordinator& coordinator = coordinator_;
  coordinator_.Post(
      [&coordinator, caller = *caller, request, response, reactor](Scheduler& scheduler) {
        absl::Status status = scheduler.Complete(caller, *request);
        if (status.ok() && request->has_lease_next()) {
          // The next jobs, granted in the same group commit as the result.
          v1::LeaseRequest next = request->lease_next();
          next.set_wait_ms(0);  // answered now: never parked as a long-poll
          scheduler.Lease(caller, next, [response](absl::StatusOr<v1::LeaseResponse> leased) {
            if (leased.ok()) *response->mutable_next() = std::move(*leased);
          });
        }
        // Answered once the change is durable (group commit), never before.
        coordinator.Ack([response, reactor, status](const absl::Status& committed) {
          if (!committed.ok()) response->Clear();
          reactor->Finish(ToGrpcStatus(status.ok() ? committed : status));
        });
      });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Fail(grpc::CallbackServerContext* ctx,
                                                  const v1::FailRequest* request,
                                                  v1::FailResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(Fail), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx, [caller = *caller, request](Scheduler& scheduler) {
    return scheduler.Fail(caller, *request);
  });
}

grpc::ServerReadReactor<v1::ArtifactChunk>* WorkerServiceImpl::UploadArtifact(
    grpc::CallbackServerContext* ctx, v1::UploadArtifactResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(UploadArtifact), auth_);
  if (!caller.ok()) return new ErrorReader(caller.status());
  return new UploadReactor(store_, coordinator_, pool_, *caller, upload_budget_, response);
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* WorkerServiceImpl::FetchArtifact(
    grpc::CallbackServerContext* ctx, const v1::FetchArtifactRequest* request) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(FetchArtifact), auth_);
  if (!caller.ok()) return new ErrorWriter(caller.status());
  if (auto s = Validate(*request); !s.ok()) return new ErrorWriter(s);
  // A prepared dataset may be hundreds of MB: checked and read on the pool.
  auto* writer = new BlobWriteReactor();
  pool_.Post([this, caller = *caller, request, writer] {
    auto resume_of = CheckFetch(store_, caller, request->sha256());
    if (!resume_of.ok()) {
      writer->Fail(resume_of.status());
      return;
    }
    v1::ArtifactInfo stored;
    auto bytes = resume_of->empty() ? store_.GetArtifactBytes(request->sha256())
                                    : store_.GetResumeState(*resume_of, &stored);
    if (!bytes.ok()) {
      writer->Fail(bytes.status());
      return;
    }
    if (!resume_of->empty() && stored.sha256() != request->sha256()) {
      writer->Fail(absl::NotFoundError(
          absl::StrCat("job ", *resume_of, " has a newer resume state than ", request->sha256())));
      return;
    }
    v1::ArtifactInfo info;
    info.set_sha256(request->sha256());
    info.set_size_bytes(static_cast<int64_t>(bytes->size()));
    writer->Send(std::move(info), std::move(*bytes));
  });
  return writer;
}

}  // namespace qsweep
