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
#include "common/limits.h"
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
  // One device per slot ("cuda:0", "cuda:1", ...), e.g. from --gpus auto; a
  // job runs on the device of the slot it got. Empty: every slot uses
  // `device`. When set, its size is `slots`.
  std::vector<std::string> slot_devices;
  // Exit Run() once no job has been leased or running for this long (so that
  // a cluster allocation is not held idle). 0 = never. Default: 0.
  int64_t idle_exit_ms = 0;
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

// The GPUs a process may use, from the value of CUDA_VISIBLE_DEVICES (`value`
// null when the variable is unset). The CUDA runtime renumbers visible devices
// 0..n-1, so the result is {"cuda:0", ..., "cuda:<n-1>"} for n entries; unset,
// empty, "NoDevFiles" (Slurm without a GPU allocation) or a value starting
// with "-1" mean no GPU. Entries are integers or GPU/MIG UUIDs ("GPU-...",
// "MIG-..."); as in the CUDA runtime, the list ends at the first invalid entry.
// An error only for a value whose first entry is invalid (names the value).
absl::StatusOr<std::vector<std::string>> VisibleGpus(const char* value);

// A duration for an option such as --grace: digits with a unit ms, s, m or h
// ("90s", "5m"); digits alone are seconds. Milliseconds, or an error naming
// `text` and the accepted forms.
absl::StatusOr<int64_t> ParseDuration(const std::string& text);

// Why Run() returned.
enum class RunEnd {
  kStopped,     // Stop() was called and no job had to be handed back
  kHandedBack,  // Stop() was called and running jobs were handed back
  kIdle,        // idle_exit_ms passed without work
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

  // Runs until Stop() (or idle_exit_ms without work); then stops running
  // jobs, hands them back and returns. Returns an error only if the work
  // folder cannot be made; run_end() says why it returned.
  absl::Status Run();
  RunEnd run_end() const { return run_end_.load(); }
  // Jobs handed back to the server because the worker stopped.
  int jobs_handed_back() const { return jobs_handed_back_.load(); }

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
  // JobContext::SaveResumeState of `job`: its metrics first, then the state.
  absl::Status UploadResumeState(RunningJob& job, const std::string& path, int64_t epochs_done);
  void ReportOutcome(RunningJob& job, JobOutcome outcome);
  // Sends the job's metrics backlog beyond `keep` (default: one request's
  // worth, kMaxMetricsPerRequest) in heartbeats, so its Complete/Fail fits,
  // trying each up to `attempts` times (0 = report_attempts). The first
  // error, after which the rest stays queued.
  absl::Status FlushMetrics(RunningJob& job, size_t keep = kMaxMetricsPerRequest, int attempts = 0);
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
  std::atomic<int> jobs_handed_back_{0};
  std::atomic<RunEnd> run_end_{RunEnd::kStopped};
  std::vector<bool> slot_busy_;  // by slot index; guarded by mu_
};

}  // namespace qsweep
