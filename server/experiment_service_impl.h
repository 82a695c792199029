// The Experiments service: a thin adapter. It validates each request, then
// either posts mutations to the scheduler strand (finishing the reactor from
// the completion) or reads the store, which is thread-safe. Slow work (sweep
// expansion, dataset preparation, artifact reads) runs on the server's
// WorkPool, never on gRPC callback threads or the strand; the RPC is finished
// from there. WatchSweep streams from the WatchHub (sweep_watch.h). Errors
// become grpc::Status only through ToGrpcStatus.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/dataset_artifacts.h"
#include "server/sweep.h"
#include "server/sweep_watch.h"
#include "server/work_pool.h"
#include "storage/store.h"

namespace qsweep {

struct ExperimentServiceOptions {
  // Prepare each sweep's datasets at submission, store them as "dataset"
  // artifacts and record their hash in the jobs (see dataset_artifacts.h);
  // a dataset the server cannot prepare rejects the sweep. false = workers
  // prepare datasets themselves (for in-process tests). Default: false;
  // qsweep-server turns it on.
  bool serve_datasets = false;
  // Where served datasets are prepared. Default: "" = DefaultDataDir().
  std::string data_dir;
  // Prepares served datasets. Default: empty = ServeDatasets. Tests put a
  // stand-in here.
  DatasetPreparer dataset_preparer;
};

class ExperimentServiceImpl final : public v1::Experiments::CallbackService {
 public:
  // None is owned; all must outlive the service. `pool` runs slow work,
  // `watch_pool` builds WatchSweep events.
  ExperimentServiceImpl(Coordinator& coordinator, Store& store, Authenticator& auth,
                        WatchHub& watch_hub, WorkPool& pool, WorkPool& watch_pool,
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
  // A submission made ready off the strand: the sweep expanded (once) and
  // its datasets prepared. `repeated`: the idempotency key is known, the
  // scheduler answers with the earlier sweep.
  struct PreparedSweep {
    bool repeated = false;
    SweepPlan plan;
    std::vector<std::string> dataset_sha256;  // one per trial when serving datasets
  };
  absl::StatusOr<PreparedSweep> PrepareSweep(const Caller& caller,
                                             const v1::SubmitSweepRequest& request);
  // One dataset hash per trial of `plan` when options_.serve_datasets, else empty.
  absl::StatusOr<std::vector<std::string>> ServeSweepDatasets(const SweepPlan& plan);
  // The artifact a DownloadArtifact request names, if the caller may read it.
  absl::StatusOr<v1::ArtifactInfo> FindDownload(const Caller& caller,
                                                const v1::DownloadArtifactRequest& request);
  Coordinator& coordinator_;
  Store& store_;
  Authenticator& auth_;
  WatchHub& watch_hub_;
  WorkPool& pool_;
  WorkPool& watch_pool_;
  const ExperimentServiceOptions options_;
};

}  // namespace qsweep
