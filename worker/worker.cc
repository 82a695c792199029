#include "worker/worker.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "common/sha256.h"

namespace qsweep {

namespace fs = std::filesystem;

enum StopReason { kRun = 0, kCancelled = 1, kLost = 2, kShutdown = 3 };

bool IsSafeId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  return true;
}

absl::StatusOr<std::vector<std::string>> VisibleGpus(const char* value) {
  std::vector<std::string> gpus;
  if (value == nullptr) return gpus;
  const std::string v = value;
  if (v.empty() || v == "NoDevFiles") return gpus;
  size_t start = 0;
  while (start <= v.size()) {
    size_t end = v.find(',', start);
    if (end == std::string::npos) end = v.size();
    std::string entry = v.substr(start, end - start);
    while (!entry.empty() && entry.front() == ' ') entry.erase(0, 1);
    while (!entry.empty() && entry.back() == ' ') entry.pop_back();
    bool ok = !entry.empty();
    if (ok && (entry.rfind("GPU-", 0) == 0 || entry.rfind("MIG-", 0) == 0)) {
      ok = entry.size() > 4;
    } else {
      for (char c : entry) ok = ok && c >= '0' && c <= '9';
    }
    if (!ok) {
      if (gpus.empty() && entry.rfind("-1", 0) != 0)
        return absl::InvalidArgumentError(absl::StrCat(
            "CUDA_VISIBLE_DEVICES is '", v,
            "'; allowed: unset, empty, NoDevFiles, or a comma-separated list of GPU indices or "
            "GPU-/MIG- UUIDs"));
      break;  // the CUDA runtime ignores the rest of the list too
    }
    gpus.push_back(absl::StrCat("cuda:", gpus.size()));
    start = end + 1;
  }
  return gpus;
}

absl::StatusOr<int64_t> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string unit = text.substr(digits);
  int64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  if (unit == "ms") scale = 1;
  if (unit == "m") scale = 60 * 1000;
  if (unit == "h") scale = 3600 * 1000;
  if (digits == 0 || digits > 9 || scale == 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "duration is '", text, "'; allowed: digits with a unit ms, s, m or h (e.g. 90s, 5m)"));
  return std::stoll(text.substr(0, digits)) * scale;
}

absl::StatusOr<std::string> MakeTempFolder(const std::string& prefix) {
  std::string tmpl = prefix + "XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr)
    return absl::InternalError(
        absl::StrCat("cannot create a folder ", tmpl, ": ", std::strerror(errno)));
  return tmpl;
}

struct Worker::RunningJob final : public JobContext {
  CoordinatorClient* client = nullptr;
  Worker* worker = nullptr;
  v1::GrantedLease lease;
  std::string work_dir;
  std::string start_error;  // set when the job cannot start (bad id, no folder)
  int slot = -1;            // index into the worker's slots
  std::string device;       // the slot's device; empty = the runner's own
  std::atomic<int> stop{kRun};
  std::atomic<bool> finished{false};
  std::mutex mu;
  std::vector<v1::Metric> metrics;  // not yet sent; guarded by mu
  v1::JobProgress progress;         // guarded by mu
  int heartbeats_in_flight = 0;     // sending some of `metrics`; guarded by mu
  std::condition_variable sent;     // heartbeats_in_flight went down

  void ReportMetric(const v1::Metric& m) override {
    std::lock_guard<std::mutex> lock(mu);
    metrics.push_back(m);
  }
  void ReportProgress(const v1::JobProgress& p) override {
    std::lock_guard<std::mutex> lock(mu);
    progress = p;
  }
  bool ShouldStop() override { return stop.load() != kRun; }
  const std::string& WorkDir() const override { return work_dir; }
  std::string Device() const override { return device; }
  absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) override {
    return client->FetchArtifact(sha256);
  }
  absl::Status SaveResumeState(const std::string& path, int64_t epochs_done) override {
    return worker->UploadResumeState(*this, path, epochs_done);
  }

  // The oldest `max` metrics not yet sent (all when there are fewer).
  std::vector<v1::Metric> TakeMetrics(size_t max) {
    std::lock_guard<std::mutex> lock(mu);
    if (metrics.size() <= max) return std::exchange(metrics, {});
    std::vector<v1::Metric> taken(std::make_move_iterator(metrics.begin()),
                                  std::make_move_iterator(metrics.begin() + max));
    metrics.erase(metrics.begin(), metrics.begin() + max);
    return taken;
  }
  size_t PendingMetrics() {
    std::lock_guard<std::mutex> lock(mu);
    return metrics.size();
  }
  void PutBack(std::vector<v1::Metric> unsent) {
    std::lock_guard<std::mutex> lock(mu);
    unsent.insert(unsent.end(), metrics.begin(), metrics.end());
    metrics = std::move(unsent);
  }
};

struct Worker::Unit {
  std::vector<std::shared_ptr<RunningJob>> jobs;
  int slot = -1;  // index into slot_busy_; guarded by mu_
  std::thread thread;
  std::atomic<bool> done{false};
};

namespace {

bool Retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("output file '", path, "' cannot be read"));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

template <typename Req>
void AddMetrics(Req& req, const std::vector<v1::Metric>& metrics) {
  for (const auto& m : metrics) *req.add_metrics() = m;
}

// `text` cut to at most `max` bytes (at a UTF-8 character boundary), with a
// note saying how long it was.
std::string Shortened(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  const std::string note = absl::StrCat(" ... (", text.size(), " bytes, shortened)");
  size_t cut = max > note.size() ? max - note.size() : 0;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + note;
}

// Keeps what a job produced within the server's limits (common/limits.h), so
// that the report is accepted: long texts are shortened, oversized JSON is
// replaced by a note.
void FitLimits(v1::CompleteRequest& req) {
  if (req.result_json().size() > kMaxResultJsonBytes)
    req.set_result_json(absl::StrCat("{\"shortened_bytes\": ", req.result_json().size(), "}"));
  while (req.reports_size() > kMaxReportsPerComplete) req.mutable_reports()->RemoveLast();
  for (auto& r : *req.mutable_reports()) {
    if (r.json().size() + r.text().size() <= kMaxReportBytes) continue;
    if (r.json().size() > kMaxReportBytes / 2)
      r.set_json(absl::StrCat("{\"shortened_bytes\": ", r.json().size(), "}"));
    r.set_text(Shortened(r.text(), kMaxReportBytes - r.json().size()));
  }
}

}  // namespace

Worker::Worker(CoordinatorClient& client, JobRunner& runner, WorkerOptions options)
    : client_(client), runner_(runner), options_(std::move(options)), rng_(std::random_device{}()) {
  if (options_.name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options_.name = absl::StrCat(host, ":", getpid());
  }
}

Worker::~Worker() {
  Stop();
  ReapFinished();
}

void Worker::Log(const std::string& line) {
  if (options_.log) options_.log(line);
}

std::string Worker::RequestId() {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrFormat("%016x%016x", rng_(), rng_());
}

bool Worker::WaitOrStop(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

void Worker::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  for (auto& [id, job] : jobs_) {
    int expected = kRun;
    job->stop.compare_exchange_strong(expected, kShutdown);
  }
  cv_.notify_all();
}

absl::Status Worker::Retry(const std::function<absl::Status()>& call, int attempts) {
  int64_t backoff = options_.initial_backoff_ms;
  absl::Status s;
  for (int i = 0; i < attempts; ++i) {
    s = call();
    if (!Retryable(s)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));  // not interruptible:
    backoff = std::min(backoff * 2, options_.max_backoff_ms);         // results must go out
  }
  return s;
}

bool Worker::RegisterUntilDone() {
  v1::RegisterRequest req;
  req.set_request_id(RequestId());
  req.set_name(options_.name);
  req.set_device(options_.device);
  req.set_slots(options_.slots);
  for (const auto& d : options_.slot_devices) req.add_devices(d);
  int64_t backoff = options_.initial_backoff_ms;
  while (true) {
    auto resp = client_.Register(req);
    if (resp.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      worker_id_ = resp->worker_id();
      heartbeat_ms_ = options_.heartbeat_interval_ms > 0 ? options_.heartbeat_interval_ms
                                                         : resp->heartbeat_interval_ms();
      Log(absl::StrCat("registered as ", worker_id_, " (", options_.slots, " slot(s), ",
                       options_.slot_devices.empty() ? options_.device
                                                     : absl::StrJoin(options_.slot_devices, ","),
                       ")"));
      return true;
    }
    Log(absl::StrCat("register failed: ", resp.status().ToString(), "; retrying in ", backoff,
                     " ms"));
    if (!WaitOrStop(backoff)) return false;
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

absl::Status Worker::Run() {
  std::error_code ec;
  if (options_.work_dir.empty()) {
    auto made = MakeTempFolder((fs::temp_directory_path(ec) / "qsweep-worker-").string());
    if (!made.ok()) return made.status();
    options_.work_dir = *made;
    own_work_dir_ = true;
  }
  fs::create_directories(options_.work_dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create work folder '", options_.work_dir, "': ", ec.message()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot_busy_.assign(options_.slots, false);
  }
  run_end_ = RunEnd::kStopped;
  if (!RegisterUntilDone()) return absl::OkStatus();
  std::thread heartbeats([this] { HeartbeatLoop(); });
  int64_t backoff = options_.initial_backoff_ms;
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_work = Clock::now();
  while (true) {
    ReapFinished();
    int free_slots;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) break;
      if (!jobs_.empty()) last_work = Clock::now();
      if (options_.idle_exit_ms > 0 && jobs_.empty() &&
          Clock::now() - last_work >= std::chrono::milliseconds(options_.idle_exit_ms)) {
        Log(absl::StrCat("no work for ", options_.idle_exit_ms / 1000.0, " s; exiting"));
        run_end_ = RunEnd::kIdle;
        stopping_ = true;
        cv_.notify_all();
        break;
      }
      free_slots = options_.slots - static_cast<int>(units_.size());
      if (free_slots <= 0) {
        cv_.wait_for(lock, std::chrono::milliseconds(500));
        continue;
      }
    }
    v1::LeaseRequest req;
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.set_worker_id(worker_id_);
    }
    req.set_request_id(RequestId());
    req.set_max_jobs(free_slots);
    req.set_pack(std::clamp(options_.pack, 1,
                            std::max(1, std::min(kMaxPack, kMaxLeaseUpdates / options_.slots))));
    req.set_wait_ms(options_.lease_wait_ms);
    auto resp = client_.Lease(req);
    if (!resp.ok()) {
      Log(absl::StrCat("lease failed: ", resp.status().ToString()));
      if (absl::IsNotFound(resp.status()) && !RegisterUntilDone()) break;
      if (!WaitOrStop(backoff)) break;
      backoff = std::min(backoff * 2, options_.max_backoff_ms);
      continue;
    }
    backoff = options_.initial_backoff_ms;
    // Leases with the same pack number train together on one slot.
    std::map<int32_t, std::vector<std::shared_ptr<RunningJob>>> packs;
    for (const auto& lease : resp->leases()) {
      auto job = AddJob(lease);
      if (lease.pack() > 0)
        packs[lease.pack()].push_back(std::move(job));
      else
        StartUnit({std::move(job)});
    }
    for (auto& [number, jobs] : packs) StartUnit(std::move(jobs));
  }
  // Stopping: running jobs were told to stop; each hands its job back.
  std::vector<std::unique_ptr<Unit>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left = std::move(units_);
    units_.clear();
  }
  for (auto& unit : left) unit->thread.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.clear();
  }
  heartbeats.join();
  if (run_end_ != RunEnd::kIdle && jobs_handed_back_ > 0) run_end_ = RunEnd::kHandedBack;
  fs::remove(options_.work_dir, ec);             // only if empty
  if (own_work_dir_) options_.work_dir.clear();  // the next Run() makes a fresh one
  return absl::OkStatus();
}

std::shared_ptr<Worker::RunningJob> Worker::AddJob(const v1::GrantedLease& lease) {
  auto job = std::make_shared<RunningJob>();
  job->client = &client_;
  job->worker = this;
  job->lease = lease;
  // An id from the server becomes part of a folder name only once checked;
  // the folder itself is made by mkdtemp, never a predictable name.
  if (!IsSafeId(lease.job().id())) {
    job->start_error =
        "the server sent a job id that is not 1-128 characters of A-Z a-z 0-9 . _ - (not "
        "starting with '.'); the job was not run";
  } else {
    auto made =
        MakeTempFolder((fs::path(options_.work_dir) /
                        absl::StrCat(lease.job().id(), "-attempt", lease.job().attempt(), "-"))
                           .string());
    if (made.ok())
      job->work_dir = *made;
    else
      job->start_error = std::string(made.status().message());
  }
  Log(absl::StrCat("leased ", IsSafeId(lease.job().id()) ? lease.job().id() : "(bad id)",
                   " (lease ", lease.lease_id(), lease.pack() > 0 ? ", pack " : "",
                   lease.pack() > 0 ? absl::StrCat(lease.pack()) : "", ")"));
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) job->stop = kShutdown;
  jobs_[lease.lease_id()] = job;
  return job;
}

void Worker::StartUnit(std::vector<std::shared_ptr<RunningJob>> jobs) {
  auto unit = std::make_unique<Unit>();
  unit->jobs = std::move(jobs);
  Unit* raw = unit.get();
  std::lock_guard<std::mutex> lock(mu_);
  // The unit (one job or one pack) takes a free slot and runs on its device.
  for (size_t i = 0; i < slot_busy_.size(); ++i) {
    if (slot_busy_[i]) continue;
    slot_busy_[i] = true;
    raw->slot = static_cast<int>(i);
    if (i < options_.slot_devices.size())
      for (auto& job : raw->jobs) job->device = options_.slot_devices[i];
    break;
  }
  units_.push_back(std::move(unit));
  raw->thread = std::thread([this, raw] { RunUnit(raw); });
}

void Worker::RunUnit(Unit* unit) {
  std::vector<RunningJob*> runnable;
  for (auto& job : unit->jobs) {
    if (job->start_error.empty()) {
      runnable.push_back(job.get());
      continue;
    }
    JobOutcome outcome;
    outcome.kind = JobOutcome::Kind::kFailed;
    outcome.error = job->start_error;
    FinishJob(*job, std::move(outcome));
  }
  if (runnable.size() == 1) {
    FinishJob(*runnable[0], runner_.Run(runnable[0]->lease.job(), *runnable[0]));
  } else if (!runnable.empty()) {
    std::vector<const v1::Job*> specs;
    std::vector<JobContext*> contexts;
    for (auto* job : runnable) {
      specs.push_back(&job->lease.job());
      contexts.push_back(job);
    }
    std::vector<bool> reported(runnable.size(), false);
    runner_.RunPack(specs, contexts, [&](size_t i, JobOutcome outcome) {
      if (i >= runnable.size() || reported[i]) return;  // a runner bug: report once
      reported[i] = true;
      FinishJob(*runnable[i], std::move(outcome));
    });
    for (size_t i = 0; i < runnable.size(); ++i) {
      if (reported[i]) continue;
      JobOutcome outcome;
      outcome.kind = JobOutcome::Kind::kFailed;
      outcome.error = "the job runner returned from its pack without a result for this job";
      FinishJob(*runnable[i], std::move(outcome));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (unit->slot >= 0 && unit->slot < static_cast<int>(slot_busy_.size()))
    slot_busy_[unit->slot] = false;
  unit->done = true;
  cv_.notify_all();
}

void Worker::FinishJob(RunningJob& job, JobOutcome outcome) {
  ReportOutcome(job, std::move(outcome));
  std::error_code ec;
  if (!job.work_dir.empty())
    fs::remove_all(job.work_dir, ec);  // outputs were uploaded; the server keeps them
  job.finished = true;
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

void Worker::ReportOutcome(RunningJob& job, JobOutcome outcome) {
  const int reason = job.stop.load();
  const std::string& id = job.lease.job().id();
  if (reason == kCancelled || reason == kLost) {
    Log(absl::StrCat(id, reason == kCancelled ? ": cancelled" : ": lease lost; dropped"));
    return;
  }
  absl::Status s;
  if (outcome.kind == JobOutcome::Kind::kSucceeded && reason == kRun) {
    v1::CompleteRequest req;
    for (const auto& out : outcome.outputs) {
      auto bytes = ReadFile(out.path);
      if (!bytes.ok()) continue;
      v1::ArtifactInfo info;
      info.set_sha256(Sha256Hex(*bytes));
      info.set_kind(out.kind);
      info.set_job_id(id);
      info.set_name(out.name);
      s = Retry(
          [&] {
            return client_.UploadArtifact(job.lease.lease_id(), job.lease.epoch(), info, *bytes);
          },
          options_.report_attempts);
      if (!s.ok()) Log(absl::StrCat(id, ": upload of ", out.name, " failed: ", s.ToString()));
      if (s.ok() && out.name == "best") req.set_best_checkpoint_sha256(info.sha256());
      if (s.ok() && out.name == "last") req.set_last_checkpoint_sha256(info.sha256());
    }
    req.set_request_id(RequestId());
    req.set_lease_id(job.lease.lease_id());
    req.set_epoch(job.lease.epoch());
    req.mutable_final_metrics()->insert(outcome.final_metrics.begin(), outcome.final_metrics.end());
    req.set_result_json(outcome.result_json);
    for (const auto& r : outcome.reports) {
      v1::Report* report = req.add_reports();
      report->set_pass_name(r.name);
      report->set_json(r.json);
      report->set_text(r.text);
    }
    FitLimits(req);
    FlushMetrics(job).IgnoreError();  // what is left goes with the result
    AddMetrics(req, job.TakeMetrics(kMaxMetricsPerRequest));
    s = Retry([&] { return client_.Complete(req); }, options_.report_attempts);
  } else {
    v1::FailRequest req;
    req.set_request_id(RequestId());
    req.set_lease_id(job.lease.lease_id());
    req.set_epoch(job.lease.epoch());
    const bool hand_back = reason == kShutdown || outcome.kind == JobOutcome::Kind::kStopped;
    req.set_hand_back(hand_back);
    req.set_error(hand_back ? "worker shutting down" : Shortened(outcome.error, kMaxErrorBytes));
    if (!hand_back) FlushMetrics(job).IgnoreError();
    AddMetrics(req, job.TakeMetrics(kMaxMetricsPerRequest));
    if (hand_back) ++jobs_handed_back_;
    s = Retry([&] { return client_.Fail(req); }, hand_back ? 3 : options_.report_attempts);
  }
  if (s.ok()) ++jobs_reported_;
  Log(absl::StrCat(id, ": ", outcome.kind == JobOutcome::Kind::kSucceeded ? "succeeded" : "ended",
                   s.ok() ? "" : absl::StrCat(" (report failed: ", s.ToString(), ")")));
}

void Worker::ReapFinished() {
  std::vector<std::unique_ptr<Unit>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->finished)
        it = jobs_.erase(it);
      else
        ++it;
    }
    for (auto it = units_.begin(); it != units_.end();) {
      if ((*it)->done) {
        done.push_back(std::move(*it));
        it = units_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& unit : done) unit->thread.join();
}

absl::Status Worker::UploadResumeState(RunningJob& job, const std::string& path,
                                       int64_t epochs_done) {
  const std::string& id = job.lease.job().id();
  // Also while the worker shuts down (the job is handed back next), not once
  // it is cancelled or its lease is lost.
  const int stop = job.stop.load();
  if (stop == kCancelled || stop == kLost)
    return absl::FailedPreconditionError("the job was cancelled or its lease lost");
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  // The metrics of the epochs the state holds are stored first: an attempt
  // that resumes from it reports from the next epoch on only. The training
  // thread waits here, so no new metric comes meanwhile; a heartbeat may
  // still carry some (it puts them back if they were not stored).
  absl::Status s;
  for (int round = 0; round < 3; ++round) {
    {
      std::unique_lock<std::mutex> lock(job.mu);
      if (!job.sent.wait_for(lock, std::chrono::seconds(60),
                             [&] { return job.heartbeats_in_flight == 0; }))
        return absl::DeadlineExceededError("a heartbeat with this job's metrics is not answered");
      if (job.metrics.empty()) break;
    }
    // Few attempts: training waits meanwhile, and a state not sent now only
    // means an older one is used.
    s = FlushMetrics(job, 0, 3);
    if (!s.ok()) return s;
  }
  if (job.PendingMetrics() > 0)
    return absl::UnavailableError("the job's metrics could not all be stored");
  v1::ArtifactInfo info;
  info.set_sha256(Sha256Hex(*bytes));
  info.set_kind("resume");
  info.set_name("resume");
  info.set_job_id(id);
  info.set_epochs_done(epochs_done);
  info.set_size_bytes(static_cast<int64_t>(bytes->size()));
  s = Retry(
      [&] { return client_.UploadArtifact(job.lease.lease_id(), job.lease.epoch(), info, *bytes); },
      3);
  if (!s.ok())
    Log(absl::StrCat(id, ": upload of the resume state after epoch ", epochs_done,
                     " failed: ", s.ToString()));
  return s;
}

absl::Status Worker::FlushMetrics(RunningJob& job, size_t keep, int attempts) {
  while (job.PendingMetrics() > keep) {
    v1::HeartbeatRequest req;
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.set_worker_id(worker_id_);
    }
    req.set_request_id(RequestId());
    auto* u = req.add_updates();
    u->set_lease_id(job.lease.lease_id());
    u->set_epoch(job.lease.epoch());
    {
      std::lock_guard<std::mutex> job_lock(job.mu);
      *u->mutable_progress() = job.progress;
    }
    std::vector<v1::Metric> batch = job.TakeMetrics(kMaxMetricsPerRequest);
    AddMetrics(*u, batch);
    absl::StatusOr<v1::HeartbeatResponse> resp;
    absl::Status s = Retry(
        [&] {
          resp = client_.Heartbeat(req);
          return resp.status();
        },
        attempts > 0 ? attempts : options_.report_attempts);
    if (s.ok() && resp->verdicts_size() > 0 && resp->verdicts(0).action() == v1::NOT_STORED)
      s = absl::UnavailableError(resp->verdicts(0).error());
    if (!s.ok()) {
      job.PutBack(std::move(batch));
      Log(absl::StrCat(job.lease.job().id(), ": sending metrics failed: ", s.ToString()));
      return s;
    }
  }
  return absl::OkStatus();
}

void Worker::HeartbeatLoop() {
  while (true) {
    int64_t period;
    {
      std::lock_guard<std::mutex> lock(mu_);
      period = heartbeat_ms_;
    }
    if (!WaitOrStop(period)) return;
    SendHeartbeat();
  }
}

void Worker::SendHeartbeat() {
  v1::HeartbeatRequest req;
  std::map<std::string, std::pair<std::shared_ptr<RunningJob>, std::vector<v1::Metric>>> sent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    req.set_worker_id(worker_id_);
    // Within the server's limit per request; the rest goes with later beats.
    size_t budget = static_cast<size_t>(kMaxMetricsPerRequest);
    for (auto& [lease_id, job] : jobs_) {
      if (job->finished || job->stop != kRun) continue;
      auto* u = req.add_updates();
      u->set_lease_id(lease_id);
      u->set_epoch(job->lease.epoch());
      std::vector<v1::Metric> metrics = job->TakeMetrics(budget);
      budget -= metrics.size();
      {
        std::lock_guard<std::mutex> job_lock(job->mu);
        ++job->heartbeats_in_flight;
      }
      for (const auto& m : metrics) *u->add_metrics() = m;
      {
        std::lock_guard<std::mutex> job_lock(job->mu);
        *u->mutable_progress() = job->progress;
      }
      sent[lease_id] = {job, std::move(metrics)};
    }
  }
  req.set_request_id(RequestId());
  auto resp = client_.Heartbeat(req);
  // Once the answer is handled (metrics put back or stored), the jobs' metrics
  // are no longer in flight (UploadResumeState waits for that).
  struct Landed {
    decltype(sent)& jobs;
    ~Landed() {
      for (auto& [id, entry] : jobs) {
        std::lock_guard<std::mutex> job_lock(entry.first->mu);
        --entry.first->heartbeats_in_flight;
        entry.first->sent.notify_all();
      }
    }
  } landed{sent};
  // `sent` shares ownership, so a job reaped meanwhile stays alive here.
  if (!resp.ok()) {
    for (auto& [id, entry] : sent) entry.first->PutBack(std::move(entry.second));
    Log(absl::StrCat("heartbeat failed: ", resp.status().ToString()));
    return;
  }
  for (const auto& v : resp->verdicts()) {
    auto it = sent.find(v.lease_id());
    if (it == sent.end()) continue;
    if (v.action() == v1::NOT_STORED) {
      // Kept, and sent again with the next heartbeat (or the result).
      it->second.first->PutBack(std::move(it->second.second));
      Log(absl::StrCat(it->second.first->lease.job().id(),
                       ": the server could not store an update; sending it again: ", v.error()));
      continue;
    }
    int expected = kRun;
    if (v.action() == v1::CANCEL)
      it->second.first->stop.compare_exchange_strong(expected, kCancelled);
    if (v.action() == v1::LOST) it->second.first->stop.compare_exchange_strong(expected, kLost);
  }
}

}  // namespace qsweep
