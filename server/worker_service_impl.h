// The Workers service: validates each request and posts it to the scheduler
// strand; artifacts are read, hashed and stored on the server's WorkPool.
#pragma once

#include "qsweep/v1/workers.grpc.pb.h"
#include "server/artifact_streams.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/work_pool.h"
#include "storage/store.h"

namespace qsweep {

class WorkerServiceImpl final : public v1::Workers::CallbackService {
 public:
  // None is owned; all must outlive the service.
  WorkerServiceImpl(Coordinator& coordinator, Store& store, Authenticator& auth, WorkPool& pool);

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx, const v1::LeaseRequest* request,
                                  v1::LeaseResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const v1::CompleteRequest* request,
                                     v1::CompleteResponse* response) override;
  grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* ctx, const v1::FailRequest* request,
                                 v1::FailResponse* response) override;
  grpc::ServerReadReactor<v1::ArtifactChunk>* UploadArtifact(
      grpc::CallbackServerContext* ctx, v1::UploadArtifactResponse* response) override;
  grpc::ServerWriteReactor<v1::ArtifactChunk>* FetchArtifact(
      grpc::CallbackServerContext* ctx, const v1::FetchArtifactRequest* request) override;

 private:
  Coordinator& coordinator_;
  Store& store_;
  Authenticator& auth_;
  WorkPool& pool_;
  UploadBudget upload_budget_;

 public:
  // Uploads being received now (for tests and diagnostics).
  int32_t uploads_in_progress() const {
    return upload_budget_.uploads.load();
  }  // uploads in progress (common/limits.h)
};

}  // namespace qsweep
