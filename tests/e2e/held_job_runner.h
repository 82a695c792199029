// Test-only job runner for the fault tests (compiled into the test binary
// qsweep-worker-held only, never into qsweep-worker): it makes "a worker dies
// in the middle of a job" deterministic instead of a race with the job's speed.
//
// With $QSWEEP_TEST_HOLD_DIR set, the first job attempt (across every worker
// sharing that folder) to report a metric is held there: the worker claims the
// folder's `claimed` file, writes "<pid> <job id>\n" to the FIFO `held.fifo`
// that the test opened for reading, and the job then makes no progress until
// the job must stop (cancel, lost lease, shutdown). Its lease stays alive
// (heartbeats run on their own thread), so the job is provably RUNNING on this
// worker, with metrics sent, until the test kills the worker or creates the
// folder's `release` file (the job then goes on normally). Every other attempt
// runs normally. With $QSWEEP_TEST_HOLD_EPOCH=k, the hold starts at the first
// metric of epoch k or later instead (so the job's resume state after k
// epochs is stored on the coordinator before: see
// JobContext::SaveResumeState).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "worker/job_runner.h"

namespace qsweep::testing {

class HeldJobRunner final : public JobRunner {
 public:
  // `inner` must outlive this runner. An empty `dir` holds nothing.
  HeldJobRunner(JobRunner& inner, std::string dir) : inner_(inner), dir_(std::move(dir)) {}

  static std::string DirFromEnvironment() {
    const char* d = std::getenv("QSWEEP_TEST_HOLD_DIR");
    return d == nullptr ? "" : d;
  }
  static int64_t EpochFromEnvironment() {
    const char* e = std::getenv("QSWEEP_TEST_HOLD_EPOCH");
    return e == nullptr ? 0 : std::atoll(e);
  }

  JobOutcome Run(const v1::Job& job, JobContext& context) override {
    if (dir_.empty()) return inner_.Run(job, context);
    HoldingContext held(context, dir_, job.id());
    return inner_.Run(job, held);
  }

 private:
  class HoldingContext final : public JobContext {
   public:
    HoldingContext(JobContext& inner, const std::string& dir, const std::string& job_id)
        : inner_(inner), dir_(dir), job_id_(job_id) {}
    void ReportMetric(const v1::Metric& metric) override {
      inner_.ReportMetric(metric);
      if (metric.epoch() >= EpochFromEnvironment()) MaybeHold();
    }
    absl::Status SaveResumeState(const std::string& path, int64_t epochs_done) override {
      return inner_.SaveResumeState(path, epochs_done);
    }
    void ReportProgress(const v1::JobProgress& progress) override {
      inner_.ReportProgress(progress);
    }
    bool ShouldStop() override { return inner_.ShouldStop(); }
    const std::string& WorkDir() const override { return inner_.WorkDir(); }
    std::string Device() const override { return inner_.Device(); }
    absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) override {
      return inner_.FetchArtifact(sha256);
    }

   private:
    void MaybeHold() {
      if (tried_.exchange(true)) return;
      const int claim = open((dir_ + "/claimed").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
      if (claim < 0) return;  // another attempt holds (or held) the folder
      close(claim);
      const std::string line = std::to_string(getpid()) + " " + job_id_ + "\n";
      const int fifo = open((dir_ + "/held.fifo").c_str(), O_WRONLY | O_NONBLOCK);
      if (fifo >= 0) {
        (void)!write(fifo, line.data(),
                     line.size());  // < PIPE_BUF: one atomic write
        close(fifo);
      }
      // Hold: the job can neither finish nor fail while the test acts. Waking
      // up periodically only to honour a stop (JobContext has no stop event)
      // or the test's release.
      const std::string release = dir_ + "/release";
      while (!inner_.ShouldStop() && access(release.c_str(), F_OK) != 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    JobContext& inner_;
    const std::string& dir_;
    const std::string job_id_;
    std::atomic<bool> tried_{false};
  };

  JobRunner& inner_;
  const std::string dir_;
};

}  // namespace qsweep::testing
