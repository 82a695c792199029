// The worker process's loop: register, long-poll for leases, run each leased
// job on its own thread through a JobRunner, renew leases with heartbeats that
// carry progress and batched metrics, upload outputs, report the result,
// honour cancellation, hand jobs back on Stop(), and retry with backoff while
// the coordinator is away. Knows nothing of LibTorch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/coordinator_client.h"
#include "worker/job_runner.h"

namespace qsweep {

struct WorkerOptions {
  // Shown by `qsweep workers`. Default: "<hostname>:<pid>".
  std::string name;
  // "cpu" or "cuda:N". Default: "cpu".
  std::string device = "cpu";
  // Jobs run at once. Default: 1.
  int slots = 1;
  // Up to this many compatible TRAIN jobs per slot, trained together as one
  // pack (LeaseRequest.pack; JobRunner::RunPack). 1 = one job per slot.
  // Capped so that slots x pack <= kMaxLeaseUpdates. Default: 1.
  int pack = 1;
  // Folder for attempts' files; created if missing. Each attempt gets a fresh
  // folder in it made by mkdtemp (mode 0700). Default: "" = a folder made by
  // mkdtemp as $TMPDIR/qsweep-worker-XXXXXX, removed when Run() returns.
  std::string work_dir;
  // Long-poll length of one Lease call. Default: 2000 ms.
  int64_t lease_wait_ms = 2000;
  // Heartbeat period; 0 = what the server asks at Register. Default: 0.
  int64_t heartbeat_interval_ms = 0;
  // Backoff between retries while the server is unreachable: starts here and
  // doubles up to max_backoff_ms. Default: 100 and 5000 ms.
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5000;
  // Attempts per result report (Complete/Fail) before giving up. Default: 40.
  int report_attempts = 40;
  // Receives one line per notable event. Default: none.
  std::function<void(std::string_view)> log;
};

// True for an id the server may hand out and a worker may use as part of a
// file name: 1-128 characters of A-Z a-z 0-9 . _ -, not starting with '.'.
bool IsSafeId(const std::string& id);

// Makes a fresh folder `prefix`XXXXXX (mode 0700) with mkdtemp; returns its path.
absl::StatusOr<std::string> MakeTempFolder(const std::string& prefix);

class Worker {
 public:
  // `client` and `runner` are not owned and must outlive the worker.
  Worker(CoordinatorClient& client, JobRunner& runner, WorkerOptions options);
  ~Worker();

  // Runs until Stop(); then stops running jobs, hands them back and returns.
  // Returns an error only if the work folder cannot be made.
  absl::Status Run();

  // Asks Run() to finish. Thread-safe; returns at once.
  void Stop();

  // Jobs that ended with a report the server accepted (for tests and logs).
  int jobs_reported() const { return jobs_reported_.load(); }

 private:
  struct RunningJob;
  // One slot's work: a job alone, or the jobs of one pack, on one thread.
  struct Unit;
  bool RegisterUntilDone();
  // Makes the job's folder and adds it to jobs_.
  std::shared_ptr<RunningJob> AddJob(const v1::GrantedLease& lease);
  // Starts a thread running `jobs` (one job, or one pack) on one slot.
  void StartUnit(std::vector<std::shared_ptr<RunningJob>> jobs);
  void RunUnit(Unit* unit);
  // Reports the job's outcome, removes its folder and marks it finished.
  void FinishJob(RunningJob& job, JobOutcome outcome);
  void ReportOutcome(RunningJob& job, JobOutcome outcome);
  // Sends the job's metrics backlog beyond one request's worth
  // (kMaxMetricsPerRequest) in heartbeats, so its Complete/Fail fits.
  void FlushMetrics(RunningJob& job);
  void HeartbeatLoop();
  void SendHeartbeat();
  // Repeats `call` while it fails with UNAVAILABLE/DEADLINE_EXCEEDED/
  // RESOURCE_EXHAUSTED, up to `attempts` times, with backoff.
  absl::Status Retry(const std::function<absl::Status()>& call, int attempts);
  // Waits `ms` or until Stop(); false if stopping.
  bool WaitOrStop(int64_t ms);
  std::string RequestId();
  void Log(const std::string& line);
  void ReapFinished();

  CoordinatorClient& client_;
  JobRunner& runner_;
  WorkerOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;        // guarded by mu_
  bool own_work_dir_ = false;    // Run() made options_.work_dir with mkdtemp
  std::string worker_id_;        // guarded by mu_
  int64_t heartbeat_ms_ = 5000;  // guarded by mu_
  std::map<std::string, std::shared_ptr<RunningJob>> jobs_;  // by lease id; guarded by mu_
  std::vector<std::unique_ptr<Unit>> units_;                 // one per busy slot; guarded by mu_
  std::mt19937_64 rng_;                                      // guarded by mu_
  std::atomic<int> jobs_reported_{0};
};

}  // namespace qsweep
