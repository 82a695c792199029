// Reproducible trials through the service (issue 8 §5, issue 9 §1): a real
// in-process server, the worker loop and the TRAIN runner (LibTorch).
//  - Each job has its own random generator and intra-op thread setting: a
//    worker with 4 slots gives every metric of a worker with 1 slot, bit for
//    bit, for the same trials (autograd trials with dropout, packed-engine
//    trials, threads 1 and 2 side by side).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/test_tokens.h"
#include "worker/coordinator_client.h"
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

class ReproducibleServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("qsweep_reproducible_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ServerOptions options;
    options.listen = "";
    options.experiments.watch_interval_ms = 5;
    auto store = NewInMemoryStore();
    tokens_ = testing::AddTestTokens(*store);
    auto server = Server::Start(options, std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    experiments_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    client_ = NewGrpcCoordinatorClient(server_->InProcessChannel(tokens_.worker));
    TrainJobRunnerOptions runner_options;
    runner_options.data_dir = (dir_ / "data").string();
    runner_ = std::make_unique<TrainJobRunner>(runner_options);
  }
  void TearDown() override {
    StopWorker();
    fs::remove_all(dir_);
  }

  // Starts a worker with `slots` slots (packs of up to `pack` jobs) running
  // jobs through `runner` (the TRAIN runner when null).
  void StartWorker(int slots, JobRunner* runner = nullptr, int pack = 1) {
    WorkerOptions o;
    o.name = absl::StrCat("w", ++workers_started_);
    o.slots = slots;
    o.pack = pack;
    o.heartbeat_interval_ms = 20;
    o.lease_wait_ms = 200;
    o.work_dir = (dir_ / absl::StrCat("work", workers_started_)).string();
    worker_ = std::make_unique<Worker>(*client_, runner ? *runner : *runner_, o);
    worker_thread_ = std::thread([this] { ASSERT_TRUE(worker_->Run().ok()); });
  }
  void StopWorker() {
    if (!worker_) return;
    worker_->Stop();
    worker_thread_.join();
    worker_.reset();
  }

  std::string Submit(const std::string& toml) {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    v1::SubmitSweepResponse resp;
    grpc::Status s = experiments_->SubmitSweep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  // Watches the sweep until `done` (or the sweep's end when null).
  std::map<std::string, v1::Job> WatchUntil(
      const std::string& id,
      const std::function<bool(const std::map<std::string, v1::Job>&)>& done = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    v1::WatchSweepRequest req;
    req.set_sweep_id(id);
    auto reader = experiments_->WatchSweep(&ctx, req);
    v1::WatchSweepEvent event;
    std::map<std::string, v1::Job> jobs;
    while (reader->Read(&event)) {
      for (const auto& j : event.jobs()) jobs[j.id()] = j;
      if (done && done(jobs)) {
        ctx.TryCancel();
        break;
      }
    }
    reader->Finish().IgnoreError();
    return jobs;
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

  fs::path dir_;
  testing::TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<TrainJobRunner> runner_;
  std::unique_ptr<Worker> worker_;
  std::thread worker_thread_;
  int workers_started_ = 0;
};

// Issue 8 §5: the same eight trials on a worker with 4 slots (four jobs train
// at once, on the autograd path and the packed engine, with 1 and 2 intra-op
// threads side by side) and on a worker with 1 slot give every metric bit for
// bit.
TEST_F(ReproducibleServiceTest, FourSlotsGiveTheMetricsOfOneSlot) {
  StartWorker(4);
  const std::string d4 = Submit(kDropoutSweep), p4 = Submit(kPackedEngineSweep);
  WatchUntil(d4);
  WatchUntil(p4);
  StopWorker();
  StartWorker(1);
  const std::string d1 = Submit(kDropoutSweep), p1 = Submit(kPackedEngineSweep);
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

}  // namespace
}  // namespace qsweep
