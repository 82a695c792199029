// What the worker loop runs for a leased job. The loop owns leases,
// heartbeats and uploads; a JobRunner only does the work and reports through
// its JobContext. The TRAIN runner (train_job_runner.h) calls the ML core.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/common.pb.h"

namespace qsweep {

// Given to a runner for one job. Thread-safe.
class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual void ReportMetric(const v1::Metric& metric) = 0;
  virtual void ReportProgress(const v1::JobProgress& progress) = 0;
  // True once the job must stop (cancelled, lease lost, or worker shutdown).
  virtual bool ShouldStop() = 0;
  // A private, existing folder for this attempt's files.
  virtual const std::string& WorkDir() const = 0;
  // Content stored on the coordinator (e.g. the input checkpoint of a
  // TRANSFORM job). NOT_FOUND if it has none with this hash.
  virtual absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) = 0;
  // The device of the worker slot this job runs in ("cuda:1"); empty when
  // the worker has one device for all slots (the runner's own setting).
  virtual std::string Device() const { return ""; }
  // Sends the job's per-epoch resume state (the file at `path`, holding
  // `epochs_done` epochs) to the coordinator under the job's lease, after the
  // metrics reported so far are stored there, so that a later attempt can
  // continue from it (issue 9 §1). Blocks until it is acknowledged. An error
  // leaves the job running (the state is an optimisation). Default: not
  // supported (UNIMPLEMENTED).
  virtual absl::Status SaveResumeState(const std::string& path, int64_t epochs_done) {
    return absl::UnimplementedError("this job context keeps no resume states");
  }
};

// A file the loop uploads after the job succeeded.
struct OutputFile {
  std::string name;  // "best", "last", "best_state_dict", ...
  std::string kind;  // "checkpoint", "state_dict"
  std::string path;
};

// A report the loop stores on the coordinator with the result.
struct OutputReport {
  std::string name;  // e.g. "transform"
  std::string json;
  std::string text;
};

struct JobOutcome {
  enum class Kind { kSucceeded, kFailed, kStopped };
  Kind kind = Kind::kFailed;
  std::map<std::string, double> final_metrics;
  std::vector<OutputFile> outputs;
  std::vector<OutputReport> reports;
  std::string error;        // kFailed: what went wrong, with context
  std::string result_json;  // extra result fields (JSON object)
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // Runs one job to the end, on a thread of the worker's. Never throws.
  virtual JobOutcome Run(const v1::Job& job, JobContext& context) = 0;

  // Called with job i's outcome as soon as that job has ended (also while
  // others of its pack go on); the worker loop reports it at once.
  using PackDone = std::function<void(size_t index, JobOutcome outcome)>;
  // Runs jobs the server leased as one pack (GrantedLease.pack) on one thread
  // of the worker's: jobs[i] with contexts[i] (its own metrics, progress and
  // ShouldStop). Must call done(i, ...) exactly once for every i before it
  // returns. Never throws. Default: runs them one after another with Run.
  virtual void RunPack(const std::vector<const v1::Job*>& jobs,
                       const std::vector<JobContext*>& contexts, const PackDone& done) {
    for (size_t i = 0; i < jobs.size(); ++i) done(i, Run(*jobs[i], *contexts[i]));
  }
};

}  // namespace qsweep
