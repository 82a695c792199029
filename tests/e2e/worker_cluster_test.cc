// What a worker on a cluster needs (issue 9 §1): one slot per visible GPU,
// devices shown at Register, hand-back on stop with a result that asks for a
// requeue, and exit when idle. Against a real in-process server, with
// hand-written job runners (no LibTorch).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/test_tokens.h"
#include "worker/coordinator_client.h"
#include "worker/worker.h"

namespace qsweep {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Gpus(const char* value) {
  auto gpus = VisibleGpus(value);
  EXPECT_TRUE(gpus.ok()) << gpus.status();
  return gpus.ok() ? *gpus : std::vector<std::string>{"error"};
}

TEST(VisibleGpusTest, UnsetEmptyAndNoDevFilesMeanNoGpu) {
  EXPECT_THAT(Gpus(nullptr), IsEmpty());
  EXPECT_THAT(Gpus(""), IsEmpty());
  EXPECT_THAT(Gpus("NoDevFiles"), IsEmpty());
  EXPECT_THAT(Gpus("-1"), IsEmpty());
}

TEST(VisibleGpusTest, VisibleDevicesAreRenumberedFromZero) {
  EXPECT_THAT(Gpus("0"), ElementsAre("cuda:0"));
  EXPECT_THAT(Gpus("3"), ElementsAre("cuda:0"));
  EXPECT_THAT(Gpus("2,3"), ElementsAre("cuda:0", "cuda:1"));
  EXPECT_THAT(Gpus(" 1, 0 "), ElementsAre("cuda:0", "cuda:1"));
  EXPECT_THAT(Gpus("GPU-8b1f6c2e-aaaa,MIG-11aa"), ElementsAre("cuda:0", "cuda:1"));
}

TEST(VisibleGpusTest, TheListEndsAtTheFirstInvalidEntryLikeTheCudaRuntime) {
  EXPECT_THAT(Gpus("1,-1,2"), ElementsAre("cuda:0"));
  EXPECT_THAT(Gpus("0,1,gpu2"), ElementsAre("cuda:0", "cuda:1"));
  EXPECT_THAT(Gpus("0,,1"), ElementsAre("cuda:0"));
}

TEST(VisibleGpusTest, AnInvalidFirstEntryIsAnErrorNamingTheVariable) {
  for (const char* bad : {"gpu0", "cuda:0", "all", ",0"}) {
    auto gpus = VisibleGpus(bad);
    ASSERT_FALSE(gpus.ok()) << bad;
    EXPECT_THAT(gpus.status().message(), HasSubstr("CUDA_VISIBLE_DEVICES"));
    EXPECT_THAT(gpus.status().message(), HasSubstr(bad));
    EXPECT_THAT(gpus.status().message(), HasSubstr("NoDevFiles"));
  }
}

TEST(ParseDurationTest, UnitsAndBareSeconds) {
  EXPECT_EQ(*ParseDuration("60s"), 60000);
  EXPECT_EQ(*ParseDuration("5m"), 300000);
  EXPECT_EQ(*ParseDuration("250ms"), 250);
  EXPECT_EQ(*ParseDuration("2h"), 7200000);
  EXPECT_EQ(*ParseDuration("90"), 90000);
  EXPECT_EQ(*ParseDuration("0"), 0);
  for (const char* bad : {"", "s", "5x", "-1", "1.5m", "5 m", "9999999999s"}) {
    auto d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_THAT(d.status().message(), HasSubstr("ms, s, m or h"));
  }
}

constexpr char kSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
[sweep]
retries = 1
[sweep.grid]
seed = [1, 2, 3]
)";

// Records the device of each job; the first `together` jobs wait for each
// other, so that they provably run at once, in different slots.
class DeviceRecordingRunner final : public JobRunner {
 public:
  explicit DeviceRecordingRunner(int together) : together_(together) {}
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    std::unique_lock<std::mutex> lock(mu_);
    const int n = static_cast<int>(devices_.size());
    devices_.push_back(ctx.Device());
    cv_.notify_all();
    if (n < together_)
      cv_.wait(lock, [&] { return static_cast<int>(devices_.size()) >= together_; });
    JobOutcome o;
    o.kind = JobOutcome::Kind::kSucceeded;
    return o;
  }
  std::vector<std::string> devices() {
    std::lock_guard<std::mutex> lock(mu_);
    return devices_;
  }

 private:
  const int together_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> devices_;
};

// Blocks until told to stop; counts starts and signals when `wanted` run.
class BlockingRunner final : public JobRunner {
 public:
  explicit BlockingRunner(int wanted) : wanted_(wanted) {}
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (++started_ == wanted_) cv_.notify_all();
    }
    while (!ctx.ShouldStop()) std::this_thread::yield();  // woken by Stop()
    JobOutcome o;
    o.kind = JobOutcome::Kind::kStopped;
    return o;
  }
  void WaitStarted() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return started_ >= wanted_; });
  }

 private:
  const int wanted_;
  std::mutex mu_;
  std::condition_variable cv_;
  int started_ = 0;
};

class WorkerClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.listen = "";
    auto store = NewInMemoryStore();
    tokens_ = testing::AddTestTokens(*store);
    auto server = Server::Start(options, std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    experiments_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    client_ = NewGrpcCoordinatorClient(server_->InProcessChannel(tokens_.worker));
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
    if (worker_thread_.joinable()) worker_thread_.join();
  }

  WorkerOptions Options(int slots) {
    WorkerOptions options;
    options.slots = slots;
    options.heartbeat_interval_ms = 20;
    options.lease_wait_ms = 50;
    options.initial_backoff_ms = 1;
    options.max_backoff_ms = 5;
    options.work_dir =
        (std::filesystem::temp_directory_path() / absl::StrCat("qsweep_worker_cluster_", getpid()))
            .string();
    return options;
  }
  void StartWorker(JobRunner& runner, WorkerOptions options) {
    worker_ = std::make_unique<Worker>(*client_, runner, options);
    worker_thread_ = std::thread([this] { ASSERT_TRUE(worker_->Run().ok()); });
  }

  std::string Submit() {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(kSweep);
    v1::SubmitSweepResponse resp;
    EXPECT_TRUE(experiments_->SubmitSweep(&ctx, req, &resp).ok());
    return resp.sweep().id();
  }

  v1::WatchSweepEvent WaitFinished(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchSweepRequest req;
    req.set_sweep_id(id);
    auto reader = experiments_->WatchSweep(&ctx, req);
    v1::WatchSweepEvent event, last;
    while (reader->Read(&event)) last = event;
    EXPECT_TRUE(reader->Finish().ok());
    return last;
  }

  std::vector<v1::Job> Jobs(const std::string& sweep_id) {
    JobFilter filter;
    filter.sweep_id = sweep_id;
    auto jobs = server_->store().ListJobs(filter);
    EXPECT_TRUE(jobs.ok());
    return jobs.ok() ? *jobs : std::vector<v1::Job>{};
  }

  testing::TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<Worker> worker_;
  std::thread worker_thread_;
};

TEST_F(WorkerClusterTest, EachSlotRunsItsJobsOnItsOwnDevice) {
  DeviceRecordingRunner runner(/*together=*/2);
  WorkerOptions options = Options(2);
  options.device = "cuda";
  options.slot_devices = {"cuda:0", "cuda:1"};
  StartWorker(runner, options);
  std::string id = Submit();
  EXPECT_EQ(WaitFinished(id).summary().succeeded(), 3);
  auto devices = runner.devices();
  ASSERT_EQ(devices.size(), 3u);
  // The first two ran at once, so in different slots.
  EXPECT_EQ(std::set<std::string>(devices.begin(), devices.begin() + 2),
            (std::set<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_THAT(devices[2], ::testing::AnyOf("cuda:0", "cuda:1"));

  grpc::ClientContext ctx;
  v1::ListWorkersResponse resp;
  ASSERT_TRUE(experiments_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
  ASSERT_EQ(resp.workers_size(), 1);
  EXPECT_THAT(resp.workers(0).devices(), ElementsAre("cuda:0", "cuda:1"));
  EXPECT_EQ(resp.workers(0).device(), "cuda");
}

TEST_F(WorkerClusterTest, WithoutSlotDevicesTheRunnerKeepsItsOwnDevice) {
  DeviceRecordingRunner runner(/*together=*/1);
  StartWorker(runner, Options(1));
  EXPECT_EQ(WaitFinished(Submit()).summary().succeeded(), 3);
  EXPECT_THAT(runner.devices(), ElementsAre("", "", ""));
}

TEST_F(WorkerClusterTest, RegisterRefusesMoreDevicesThanSlotsOrBadNames) {
  v1::RegisterRequest req;
  req.set_name("w");
  req.set_device("cuda");
  req.set_slots(1);
  req.add_devices("cuda:0");
  req.add_devices("cuda:1");
  auto resp = client_->Register(req);
  ASSERT_FALSE(resp.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(resp.status())) << resp.status();
  EXPECT_THAT(resp.status().message(), HasSubstr("devices"));
  req.set_slots(2);
  req.set_devices(1, "gpu1");
  resp = client_->Register(req);
  ASSERT_FALSE(resp.ok());
  EXPECT_THAT(resp.status().message(), HasSubstr("cpu or cuda:N"));
  req.set_devices(1, "cuda:1");
  EXPECT_TRUE(client_->Register(req).ok());
}

TEST_F(WorkerClusterTest, StopHandsJobsBackWithoutUsingRetriesAndSaysSo) {
  BlockingRunner runner(/*wanted=*/2);
  StartWorker(runner, Options(2));
  std::string id = Submit();
  runner.WaitStarted();
  worker_->Stop();
  worker_thread_.join();
  EXPECT_EQ(worker_->run_end(), RunEnd::kHandedBack);
  EXPECT_EQ(worker_->jobs_handed_back(), 2);
  for (const auto& job : Jobs(id)) {
    EXPECT_EQ(job.state(), v1::PENDING) << job.id();
    EXPECT_EQ(job.failures(), 0) << job.id();
  }
}

TEST_F(WorkerClusterTest, StopWithNothingRunningIsAPlainStop) {
  BlockingRunner runner(/*wanted=*/1);
  StartWorker(runner, Options(1));
  worker_->Stop();
  worker_thread_.join();
  EXPECT_EQ(worker_->run_end(), RunEnd::kStopped);
  EXPECT_EQ(worker_->jobs_handed_back(), 0);
}

TEST_F(WorkerClusterTest, IdleExitEndsRunAfterTheLastJob) {
  DeviceRecordingRunner runner(/*together=*/1);
  WorkerOptions options = Options(1);
  options.idle_exit_ms = 300;
  StartWorker(runner, options);
  std::string id = Submit();
  worker_thread_.join();  // returns by itself once the queue stays empty
  EXPECT_EQ(worker_->run_end(), RunEnd::kIdle);
  EXPECT_EQ(worker_->jobs_reported(), 3);
  for (const auto& job : Jobs(id)) EXPECT_EQ(job.state(), v1::SUCCEEDED) << job.id();
}

TEST_F(WorkerClusterTest, IdleExitWithNothingEverQueued) {
  DeviceRecordingRunner runner(/*together=*/1);
  WorkerOptions options = Options(1);
  options.idle_exit_ms = 100;
  StartWorker(runner, options);
  worker_thread_.join();
  EXPECT_EQ(worker_->run_end(), RunEnd::kIdle);
  EXPECT_EQ(worker_->jobs_reported(), 0);
}

}  // namespace
}  // namespace qsweep
