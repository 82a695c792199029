// The Experiments service: a thin adapter. It validates each request, then
// either posts mutations to the scheduler strand (finishing the reactor from
// the completion) or reads the store, which is thread-safe. Errors become
// grpc::Status only through ToGrpcStatus.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "storage/store.h"

namespace qsweep {

struct ExperimentServiceOptions {
  // How often WatchSweep re-reads the sweep. Default: 500 ms.
  int64_t watch_interval_ms = 500;
  // Prepare each sweep's datasets at submission, store them as "dataset"
  // artifacts and record their hash in the jobs (see dataset_artifacts.h);
  // a dataset the server cannot prepare rejects the sweep. false = workers
  // prepare datasets themselves (for in-process tests). Default: false;
  // qsweep-server turns it on.
  bool serve_datasets = false;
  // Where served datasets are prepared. Default: "" = DefaultDataDir().
  std::string data_dir;
};

class ExperimentServiceImpl final : public v1::Experiments::CallbackService {
 public:
  // None is owned; all must outlive the service.
  ExperimentServiceImpl(Coordinator& coordinator, Store& store, Authenticator& auth,
                        ExperimentServiceOptions options = {});

  grpc::ServerUnaryReactor* SubmitSweep(grpc::CallbackServerContext* ctx,
                                        const v1::SubmitSweepRequest* request,
                                        v1::SubmitSweepResponse* response) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* ctx,
                                     const v1::GetSweepRequest* request,
                                     v1::SweepSummary* response) override;
  grpc::ServerUnaryReactor* ListSweeps(grpc::CallbackServerContext* ctx,
                                       const v1::ListSweepsRequest* request,
                                       v1::ListSweepsResponse* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request,
                                   v1::GetJobResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchSweepEvent>* WatchSweep(
      grpc::CallbackServerContext* ctx, const v1::WatchSweepRequest* request) override;
  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* ctx,
                                        const v1::CancelSweepRequest* request,
                                        v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* request,
                                      v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* RetryJobs(grpc::CallbackServerContext* ctx,
                                      const v1::RetryJobsRequest* request,
                                      v1::RetryJobsResponse* response) override;
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* ctx,
                                       const v1::GetMetricsRequest* request,
                                       v1::GetMetricsResponse* response) override;
  grpc::ServerUnaryReactor* SubmitTransform(grpc::CallbackServerContext* ctx,
                                            const v1::SubmitTransformRequest* request,
                                            v1::SubmitTransformResponse* response) override;
  grpc::ServerUnaryReactor* GetReport(grpc::CallbackServerContext* ctx,
                                      const v1::GetReportRequest* request,
                                      v1::Report* response) override;
  grpc::ServerWriteReactor<v1::ArtifactChunk>* DownloadArtifact(
      grpc::CallbackServerContext* ctx, const v1::DownloadArtifactRequest* request) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;

 private:
  // One dataset hash per trial when options_.serve_datasets, else empty.
  absl::StatusOr<std::vector<std::string>> ServeSweepDatasets(
      const Caller& caller, const v1::SubmitSweepRequest& request);
  Coordinator& coordinator_;
  Store& store_;
  Authenticator& auth_;
  const ExperimentServiceOptions options_;
};

}  // namespace qsweep
