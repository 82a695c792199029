// Runs TRAIN jobs through the ML core (LoadDataset, ResolveModel, TrainModel)
// and TRANSFORM jobs through the pass runner (RunTransform).
// This header and its .cc are torch-free; the torch layer is linked in.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "worker/job_runner.h"

namespace qsweep {

struct Dataset;

struct TrainJobRunnerOptions {
  // "cpu" or "cuda:N"; overrides the job's device. Default: "cpu".
  std::string device = "cpu";
  // Dataset cache folder (also of datasets fetched by hash); "" = the job's
  // data_dir or DefaultDataDir(). Default: "".
  std::string data_dir;
};

class TrainJobRunner final : public JobRunner {
 public:
  explicit TrainJobRunner(TrainJobRunnerOptions options);
  ~TrainJobRunner() override;
  JobOutcome Run(const v1::Job& job, JobContext& context) override;

 private:
  JobOutcome RunTrain(const v1::Job& job, JobContext& context);
  // Runs the job's [passes.*] on its input checkpoint (fetched by hash).
  JobOutcome RunTransformJob(const v1::Job& job, JobContext& context);
  // Loaded datasets by (name, rows, seed, dir), shared by this worker's jobs.
  std::shared_ptr<const Dataset> LoadCached(const std::string& key, const std::string& name,
                                            const std::string& dir, int64_t rows, int64_t seed,
                                            std::string& error);
  // A dataset served by the coordinator: from <dir>/by-sha256, fetched into
  // it by hash when absent (see dataset_cache.h).
  std::shared_ptr<const Dataset> LoadServed(const std::string& sha256, const std::string& dir,
                                            JobContext& context, std::string& error);
  TrainJobRunnerOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Dataset>> datasets_;  // guarded by mu_
};

}  // namespace qsweep
