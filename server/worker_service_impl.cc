#include "server/worker_service_impl.h"

#include "server/artifact_streams.h"
#include "server/grpc_status_util.h"
#include "server/strand_reactor.h"
#include "server/validation.h"

namespace qsweep {
namespace {

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

}  // namespace

WorkerServiceImpl::WorkerServiceImpl(Coordinator& coordinator, Store& store)
    : coordinator_(coordinator), store_(store) {}

grpc::ServerUnaryReactor* WorkerServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                      const v1::RegisterRequest* request,
                                                      v1::RegisterResponse* response) {
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx, [request, response](Scheduler& scheduler) {
    // Identity "" = the worker name; pass the caller's token id here once
    // tokens exist (it keys Register's idempotency and per-caller limit).
    return MoveInto(scheduler.Register(*request, /*identity=*/""), response);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Lease(grpc::CallbackServerContext* ctx,
                                                   const v1::LeaseRequest* request,
                                                   v1::LeaseResponse* response) {
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  coordinator_.Post([request, response, reactor](Scheduler& scheduler) {
    scheduler.Lease(*request, [response, reactor](absl::StatusOr<v1::LeaseResponse> result) {
      if (result.ok()) *response = std::move(*result);
      reactor->Finish(ToGrpcStatus(result.status()));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx, [request, response](Scheduler& scheduler) {
    return MoveInto(scheduler.Heartbeat(*request), response);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Complete(grpc::CallbackServerContext* ctx,
                                                      const v1::CompleteRequest* request,
                                                      v1::CompleteResponse* response) {
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx, [request](Scheduler& scheduler) {
    return scheduler.Complete(*request);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Fail(grpc::CallbackServerContext* ctx,
                                                  const v1::FailRequest* request,
                                                  v1::FailResponse* response) {
  if (auto s = Validate(*request); !s.ok()) return Done(ctx, s);
  return FinishOnStrand(coordinator_, ctx, [request](Scheduler& scheduler) {
    return scheduler.Fail(*request);
  });
}

grpc::ServerReadReactor<v1::ArtifactChunk>* WorkerServiceImpl::UploadArtifact(
    grpc::CallbackServerContext* ctx, v1::UploadArtifactResponse* response) {
  return new UploadReactor(store_, upload_budget_, response);
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* WorkerServiceImpl::FetchArtifact(
    grpc::CallbackServerContext* ctx, const v1::FetchArtifactRequest* request) {
  if (auto s = Validate(*request); !s.ok()) return new ErrorWriter(s);
  auto bytes = store_.GetArtifactBytes(request->sha256());
  if (!bytes.ok()) return new ErrorWriter(bytes.status());
  v1::ArtifactInfo info;
  info.set_sha256(request->sha256());
  info.set_size_bytes(static_cast<int64_t>(bytes->size()));
  return new BlobWriteReactor(std::move(info), std::move(*bytes));
}

}  // namespace qsweep
