// Reproducible trials through the service (issue 8 §5, issue 9 §1): a real
// in-process server, the worker loop and the TRAIN runner (LibTorch).
//  - Each job has its own random generator and intra-op thread setting: a
//    worker with 4 slots gives every metric of a worker with 1 slot, bit for
//    bit, for the same trials (autograd trials with dropout, packed-engine
//    trials, threads 1 and 2 side by side).
//  - Resume: a trial handed back after epoch k continues on the next worker
//    from its uploaded per-epoch state and ends with the metrics and weights
//    of an uninterrupted run, bit for bit.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/in_process_worker.h"
#include "tests/test_util/test_tokens.h"
#include "worker/coordinator_client.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/train_job_runner.h"
#include "worker/worker.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

// Four trials on the autograd path (Dropout p > 0 draws masks from the job's
// generator), two seeds x threads 1 and 2.
constexpr char kDropoutSweep[] = R"(
dataset = "jsc-synthetic"
synthetic_rows = 1500
batch_size = 64
max_epochs = 3
learning_rate = 1e-2
log_every_n_steps = 4
[model]
hidden = [16, 8]
dropout = 0.25
[sweep]
pack = false
[sweep.grid]
seed = [1, 2]
threads = [1, 2]
)";

// Four trials on the packed engine (each alone: pack = false).
constexpr char kPackedEngineSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
synthetic_rows = 1500
batch_size = 64
max_epochs = 3
learning_rate = 1e-2
log_every_n_steps = 4
[sweep]
pack = false
[sweep.grid]
seed = [3, 4]
threads = [1, 2]
)";

// Metrics that measure time, not training: they differ between any two runs.
bool IsTiming(const std::string& name) {
  return name == "epoch_seconds" || name == "samples_per_second" || name == "wall_seconds";
}

class ReproducibleServiceTest : public testing::InProcessWorkerTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("qsweep_reproducible_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    InProcessWorkerTest::SetUp();
    TrainJobRunnerOptions runner_options;
    runner_options.data_dir = (dir_ / "data").string();
    runner_options.resume_interval_ms = 0;  // a resume state after every epoch
    runner_ = std::make_unique<TrainJobRunner>(runner_options);
  }
  void TearDown() override {
    StopWorker();
    fs::remove_all(dir_);
  }

  // Starts a worker with `slots` slots (packs of up to `pack` jobs) running
  // jobs through `runner` (the TRAIN runner when null).
  void StartWorker(int slots, JobRunner* runner = nullptr, int pack = 1) {
    WorkerOptions o = QuickWorkerOptions(slots, "reproducible");
    o.name = absl::StrCat("w", ++workers_started_);
    o.pack = pack;
    o.work_dir = (dir_ / absl::StrCat("work", workers_started_)).string();
    InProcessWorkerTest::StartWorker(*client_, runner ? *runner : *runner_, o);
  }
  void StopWorker() {
    if (!worker_) return;
    worker_->Stop();
    worker_thread_.join();
    worker_.reset();
  }
  // Waits until the worker's Run() has returned by itself, then forgets it.
  RunEnd JoinWorker() {
    worker_thread_.join();
    const RunEnd end = worker_->run_end();
    worker_.reset();
    return end;
  }

  // Every metric of a job as the API shows it (GetMetrics), by (name, step).
  std::map<std::pair<std::string, int64_t>, v1::Metric> Metrics(const std::string& job_id) {
    grpc::ClientContext ctx;
    v1::GetMetricsRequest req;
    req.set_job_id(job_id);
    v1::GetMetricsResponse resp;
    grpc::Status s = experiments_->GetMetrics(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::map<std::pair<std::string, int64_t>, v1::Metric> out;
    for (const auto& m : resp.metrics()) {
      const bool fresh = out.emplace(std::make_pair(m.name(), m.step()), m).second;
      EXPECT_TRUE(fresh) << job_id << ": metric " << m.name() << " step " << m.step()
                         << " shown twice";
    }
    return out;
  }

  v1::GetJobResponse GetJob(const std::string& job_id) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::GetJobResponse resp;
    grpc::Status s = experiments_->GetJob(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // Every non-timing metric and final metric of job `a` equals job `b`'s, bit
  // for bit.
  void ExpectSameTraining(const std::string& a, const std::string& b) {
    SCOPED_TRACE(a + " vs " + b);
    const auto ja = GetJob(a).job(), jb = GetJob(b).job();
    ASSERT_EQ(ja.state(), v1::SUCCEEDED) << ja.error();
    ASSERT_EQ(jb.state(), v1::SUCCEEDED) << jb.error();
    int compared = 0;
    for (const auto& [name, value] : ja.final_metrics()) {
      if (IsTiming(name)) continue;
      ASSERT_TRUE(jb.final_metrics().count(name)) << name;
      EXPECT_EQ(value, jb.final_metrics().at(name)) << "final metric " << name;
      ++compared;
    }
    EXPECT_GE(compared, 6);
    const auto ma = Metrics(a), mb = Metrics(b);
    std::set<std::pair<std::string, int64_t>> ka, kb;
    for (const auto& [k, m] : ma)
      if (!IsTiming(k.first)) ka.insert(k);
    for (const auto& [k, m] : mb)
      if (!IsTiming(k.first)) kb.insert(k);
    ASSERT_EQ(ka, kb);
    for (const auto& k : ka) {
      EXPECT_EQ(ma.at(k).value(), mb.at(k).value()) << k.first << " step " << k.second;
      EXPECT_EQ(ma.at(k).epoch(), mb.at(k).epoch()) << k.first << " step " << k.second;
    }
  }

  // A stored checkpoint's weights as exported bytes (equal bytes = equal
  // tensors).
  std::string Weights(const std::string& sha256) {
    auto bytes = server_->store().GetArtifactBytes(sha256);
    EXPECT_TRUE(bytes.ok()) << sha256;
    if (!bytes.ok()) return "";
    const std::string ckpt = (dir_ / (sha256 + ".ckpt")).string();
    const std::string out = (dir_ / (sha256 + ".pt")).string();
    std::ofstream(ckpt, std::ios::binary) << *bytes;
    EXPECT_TRUE(ExportStateDict(ckpt, out).ok()) << sha256;
    std::ifstream in(out, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
  std::unique_ptr<TrainJobRunner> runner_;
  int workers_started_ = 0;
};

// Issue 8 §5: the same eight trials on a worker with 4 slots (four jobs train
// at once, on the autograd path and the packed engine, with 1 and 2 intra-op
// threads side by side) and on a worker with 1 slot give every metric bit for
// bit.
TEST_F(ReproducibleServiceTest, FourSlotsGiveTheMetricsOfOneSlot) {
  StartWorker(4);
  const std::string d4 = SubmitToml(kDropoutSweep), p4 = SubmitToml(kPackedEngineSweep);
  WatchUntil(d4);
  WatchUntil(p4);
  StopWorker();
  StartWorker(1);
  const std::string d1 = SubmitToml(kDropoutSweep), p1 = SubmitToml(kPackedEngineSweep);
  WatchUntil(d1);
  WatchUntil(p1);
  for (int i = 0; i < 4; ++i) {
    ExpectSameTraining(absl::StrCat(d4, "-", i), absl::StrCat(d1, "-", i));
    ExpectSameTraining(absl::StrCat(p4, "-", i), absl::StrCat(p1, "-", i));
  }
  // The trials differ from each other (the comparison is not vacuous).
  EXPECT_NE(GetJob(d1 + "-0").job().final_metrics().at("val_loss_epoch"),
            GetJob(d1 + "-3").job().final_metrics().at("val_loss_epoch"));
}

// The TRAIN runner, with each job's context wrapped: once a job's resume state
// after `epochs` epochs is stored on the coordinator, `stop()` is called (the
// test stops the worker: it hands its jobs back, as on SIGTERM/SIGUSR1).
class StopAfterEpochRunner final : public JobRunner {
 public:
  StopAfterEpochRunner(JobRunner& inner, int64_t epochs, std::function<void()> stop)
      : inner_(inner), epochs_(epochs), stop_(std::move(stop)) {}
  // Calls stop() at the first metric of epoch `epoch` or later instead.
  static std::unique_ptr<StopAfterEpochRunner> AtMetricOfEpoch(JobRunner& inner, int64_t epoch,
                                                               std::function<void()> stop) {
    auto r = std::make_unique<StopAfterEpochRunner>(inner, -1, std::move(stop));
    r->on_metric_epoch_ = epoch;
    return r;
  }
  JobOutcome Run(const v1::Job& job, JobContext& context) override {
    Context c(context, *this);
    return inner_.Run(job, c);
  }
  void RunPack(const std::vector<const v1::Job*>& jobs, const std::vector<JobContext*>& contexts,
               const PackDone& done) override {
    std::vector<std::unique_ptr<Context>> owned;
    std::vector<JobContext*> wrapped;
    for (auto* c : contexts) {
      owned.push_back(std::make_unique<Context>(*c, *this));
      wrapped.push_back(owned.back().get());
    }
    inner_.RunPack(jobs, wrapped, done);
  }
  std::atomic<int> states_stored{0};

 private:
  class Context final : public JobContext {
   public:
    Context(JobContext& inner, StopAfterEpochRunner& runner) : inner_(inner), runner_(runner) {}
    void ReportMetric(const v1::Metric& m) override {
      inner_.ReportMetric(m);
      if (runner_.on_metric_epoch_ >= 0 && m.epoch() >= runner_.on_metric_epoch_ &&
          !runner_.stopped_.exchange(true))
        runner_.stop_();
    }
    void ReportProgress(const v1::JobProgress& p) override { inner_.ReportProgress(p); }
    bool ShouldStop() override { return inner_.ShouldStop(); }
    const std::string& WorkDir() const override { return inner_.WorkDir(); }
    std::string Device() const override { return inner_.Device(); }
    absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) override {
      return inner_.FetchArtifact(sha256);
    }
    absl::Status SaveResumeState(const std::string& path, int64_t epochs_done) override {
      absl::Status s = inner_.SaveResumeState(path, epochs_done);
      if (s.ok()) ++runner_.states_stored;
      if (s.ok() && epochs_done == runner_.epochs_) runner_.stop_();
      return s;
    }

   private:
    JobContext& inner_;
    StopAfterEpochRunner& runner_;
  };
  JobRunner& inner_;
  const int64_t epochs_;
  const std::function<void()> stop_;
  int64_t on_metric_epoch_ = -1;
  std::atomic<bool> stopped_{false};
};

// Two trials of four epochs, each alone on a slot (a pack's numerics differ
// from a trial's alone within float tolerance, not bit for bit).
constexpr char kResumeSweep[] = R"(
model = "jsc-toy"
dataset = "jsc-synthetic"
synthetic_rows = 1500
batch_size = 64
max_epochs = 4
learning_rate = 1e-2
weight_decay = 1e-3
training_optimizer = "adamw"
log_every_n_steps = 4
[sweep]
retries = 0
pack = false
[sweep.grid]
seed = [5, 6]
)";

// Issue 9 §1: a worker with two slots is stopped (hand-back, as on SIGTERM)
// once the first trial's state after epoch 2 is stored; both trials are
// handed back without using a retry (retries = 0), the first with its state
// of epoch 2, the second with the latest state it had stored (it ran
// concurrently, so that epoch is not fixed). The next worker continues each
// from its own state and ends with every metric, final metric and best/last
// checkpoint weights of an uninterrupted run of the same sweep, bit for bit;
// the metric history shows each epoch once; each attempt records
// resumed_from_epoch; the stored state is deleted once the job succeeded.
TEST_F(ReproducibleServiceTest, HandedBackTrialsResumeAndEqualUninterruptedOnes) {
  StopAfterEpochRunner stopping(*runner_, 2, [this] { worker_->Stop(); });
  StartWorker(2, &stopping);
  const std::string id = SubmitToml(kResumeSweep);
  EXPECT_EQ(JoinWorker(), RunEnd::kHandedBack);
  const std::string first = id + "-0", second = id + "-1";
  std::map<std::string, int64_t> resumed_at;
  for (const auto& job : {first, second}) {
    const v1::Job j = GetJob(job).job();
    EXPECT_EQ(j.state(), v1::PENDING) << job;
    EXPECT_EQ(j.failures(), 0) << job;
    resumed_at[job] = j.resume_epochs();
    if (j.resume_sha256().empty()) continue;  // the second trial may have had none yet
    v1::ArtifactInfo stored;
    auto bytes = server_->store().GetResumeState(job, &stored);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(stored.sha256(), j.resume_sha256());
    EXPECT_EQ(stored.epochs_done(), j.resume_epochs());
    std::cout << "resume state of " << job << " after " << j.resume_epochs()
              << " epoch(s): " << bytes->size() << " bytes\n";
  }
  // Whoever stored a state after 2 epochs first stopped the worker.
  EXPECT_TRUE(resumed_at[first] == 2 || resumed_at[second] == 2);

  StartWorker(1, nullptr, /*pack=*/8);
  WatchUntil(id);
  const std::string reference = SubmitToml(kResumeSweep);  // uninterrupted
  WatchUntil(reference);
  for (int i = 0; i < 2; ++i) {
    const std::string job = absl::StrCat(id, "-", i);
    SCOPED_TRACE(job);
    ExpectSameTraining(job, absl::StrCat(reference, "-", i));
    const v1::GetJobResponse got = GetJob(job);
    ASSERT_EQ(got.attempts_size(), 2);
    const int64_t k = resumed_at[job];
    EXPECT_EQ(got.attempts(0).resumed_from_epoch(), 0);
    EXPECT_EQ(got.attempts(1).resumed_from_epoch(), k);
    EXPECT_THAT(got.job().result_json(),
                ::testing::HasSubstr(absl::StrCat("\"resumed_from_epoch\":", k)));
    // The second attempt stored metrics from epoch k on only.
    auto own = server_->store().ListMetrics(job, 2, "");
    ASSERT_TRUE(own.ok());
    ASSERT_FALSE(own->empty());
    for (const auto& m : *own) EXPECT_GE(m.epoch(), k) << m.name();
    // Done: the job's resume state is gone.
    EXPECT_TRUE(got.job().resume_sha256().empty());
    EXPECT_EQ(server_->store().GetResumeState(job, nullptr).status().code(),
              absl::StatusCode::kNotFound);
    // The checkpoints hold the uninterrupted run's weights (the files differ
    // in provenance: job id, attempt).
    const v1::Job ref = GetJob(absl::StrCat(reference, "-", i)).job();
    EXPECT_EQ(Weights(got.job().best_checkpoint_sha256()), Weights(ref.best_checkpoint_sha256()));
    EXPECT_EQ(Weights(got.job().last_checkpoint_sha256()), Weights(ref.last_checkpoint_sha256()));
  }
  EXPECT_GE(stopping.states_stored.load(), 2);
}

// With --resume-every longer than the run, no state goes out while the trial
// trains, but the latest one (after 2 epochs) goes out when the worker stops,
// before the job is handed back: the next attempt resumes at epoch 2 and
// ends as an uninterrupted run.
TEST_F(ReproducibleServiceTest, StoppedWorkerSendsItsLatestStateBeforeHandingBack) {
  TrainJobRunnerOptions o;
  o.data_dir = (dir_ / "data").string();
  o.resume_interval_ms = 3600 * 1000;
  TrainJobRunner slow_states(o);
  auto stopping =
      StopAfterEpochRunner::AtMetricOfEpoch(slow_states, 2, [this] { worker_->Stop(); });
  std::string toml = kResumeSweep;
  toml.replace(toml.find("seed = [5, 6]"), 13, "seed = [5]");
  StartWorker(1, stopping.get());
  const std::string id = SubmitToml(toml);
  EXPECT_EQ(JoinWorker(), RunEnd::kHandedBack);
  EXPECT_EQ(stopping->states_stored.load(), 1);  // only the one at the stop
  const v1::Job handed_back = GetJob(id + "-0").job();
  EXPECT_EQ(handed_back.state(), v1::PENDING);
  EXPECT_EQ(handed_back.resume_epochs(), 2);
  StartWorker(1);
  WatchUntil(id);
  const std::string reference = SubmitToml(toml);
  WatchUntil(reference);
  ExpectSameTraining(id + "-0", reference + "-0");
  EXPECT_EQ(GetJob(id + "-0").attempts(1).resumed_from_epoch(), 2);
}

}  // namespace
}  // namespace qsweep
