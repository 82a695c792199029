// Runs TRAIN jobs through the ML core (LoadDataset, ResolveModel, TrainModel)
// and TRANSFORM jobs through the pass runner (RunTransform).
// This header and its .cc are torch-free; the torch layer is linked in.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/trainer.h"
#include "worker/job_runner.h"

namespace qsweep {

struct Dataset;

struct TrainJobRunnerOptions {
  // "cpu" or "cuda:N"; overrides the job's device. Default: "cpu".
  std::string device = "cpu";
  // Dataset cache folder (also of datasets fetched by hash); "" = the job's
  // data_dir or DefaultDataDir(). Default: "".
  std::string data_dir;
  // Send a TRAIN job's resume state after each of its epochs but the last
  // (JobContext::SaveResumeState), so that a later attempt continues from it
  // (issue 9 §1). A job whose lease carries a resume state continues from it
  // either way. Default: true.
  bool resume_states = true;
  // Send a job's resume state at most once per this many ms (0 = after every
  // epoch), and the latest one not sent when the job is stopped to be handed
  // back: with short epochs a state per epoch would cost more than it saves.
  // Default: 10000.
  int64_t resume_interval_ms = 10000;
};

class TrainJobRunner final : public JobRunner {
 public:
  explicit TrainJobRunner(TrainJobRunnerOptions options);
  ~TrainJobRunner() override;
  JobOutcome Run(const v1::Job& job, JobContext& context) override;
  // Trains the pack's TRAIN jobs together (TrainPacked): each job's metrics,
  // progress and ShouldStop go through its own context, and its outcome is
  // reported the moment its trial ends. Jobs that cannot join the pack
  // (another kind, keys CheckPackable refuses, a model the packed engine
  // does not train) run alone afterwards.
  void RunPack(const std::vector<const v1::Job*>& jobs, const std::vector<JobContext*>& contexts,
               const PackDone& done) override;

 private:
  // A TRAIN job ready to train: its config (device, threads and folders set
  // for this worker), dataset, model and options (checkpoint folder,
  // provenance; no callback).
  struct PreparedTrain {
    TrainConfig config;
    std::shared_ptr<const Dataset> data;
    ModelSpec spec;
    TrainOptions options;
  };
  absl::StatusOr<PreparedTrain> PrepareTrain(const v1::Job& job, JobContext& context);
  static JobOutcome OutcomeOf(const PreparedTrain& p, const TrainResult& result);
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
