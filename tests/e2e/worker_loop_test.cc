// The worker loop against a real in-process server, with hand-written job
// runners (no LibTorch) and fault injection by wrapping the client.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/test_tokens.h"
#include "worker/coordinator_client.h"
#include "worker/worker.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

constexpr char kSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
[sweep]
retries = 1
[sweep.grid]
seed = [1, 2, 3]
)";

// Reports two metrics and writes a "best" file whose content names the job.
class QuickRunner final : public JobRunner {
 public:
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    for (int step = 1; step <= 2; ++step) {
      v1::Metric m;
      m.set_name("train_loss_step");
      m.set_step(step);
      m.set_value(1.0 / step);
      ctx.ReportMetric(m);
    }
    const std::string path = ctx.WorkDir() + "/best.ckpt";
    std::ofstream(path) << "weights of " << job.id();
    JobOutcome o;
    o.kind = JobOutcome::Kind::kSucceeded;
    o.final_metrics["test_acc_epoch"] = 0.1 * job.index();
    o.outputs.push_back({"best", "checkpoint", path});
    return o;
  }
};

// Blocks until told to stop; counts starts.
class BlockingRunner final : public JobRunner {
 public:
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    if (++started_ == 1) first_started_.set_value();
    while (!ctx.ShouldStop()) std::this_thread::yield();  // woken by a heartbeat or Stop()
    JobOutcome o;
    o.kind = JobOutcome::Kind::kStopped;
    return o;
  }
  std::promise<void> first_started_;
  std::atomic<int> started_{0};
};

class FailingRunner final : public JobRunner {
 public:
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    JobOutcome o;
    o.kind = JobOutcome::Kind::kFailed;
    o.error = "the trial exploded";
    return o;
  }
};

// Logs more metrics than one request may carry, all at once at the end.
class ChattyRunner final : public JobRunner {
 public:
  static constexpr int kMetrics = 2 * kMaxMetricsPerRequest + 7;
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    for (int step = 0; step < kMetrics; ++step) {
      v1::Metric m;
      m.set_name("train_loss_step");
      m.set_step(step);
      m.set_value(step);
      ctx.ReportMetric(m);
    }
    JobOutcome o;
    o.kind = JobOutcome::Kind::kSucceeded;
    return o;
  }
};

// Fails with an error text longer than the server accepts.
class VerboseFailingRunner final : public JobRunner {
 public:
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    JobOutcome o;
    o.kind = JobOutcome::Kind::kFailed;
    o.error = "the trial exploded: " + std::string(100000, 'x');
    return o;
  }
};

// Answers the first `failures` Register and Lease calls with UNAVAILABLE.
class FlakyClient final : public CoordinatorClient {
 public:
  FlakyClient(CoordinatorClient& base, int failures) : left_(failures), base_(base) {}
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& r) override {
    if (left_-- > 0) return absl::UnavailableError("server away");
    return base_.Register(r);
  }
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& r) override {
    if (left_-- > 0) return absl::UnavailableError("server away");
    return base_.Lease(r);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    return base_.Heartbeat(r);
  }
  absl::Status Complete(const v1::CompleteRequest& r) override { return base_.Complete(r); }
  absl::Status Fail(const v1::FailRequest& r) override { return base_.Fail(r); }
  absl::Status UploadArtifact(const std::string& lease, int64_t epoch, const v1::ArtifactInfo& i,
                              const std::string& b) override {
    return base_.UploadArtifact(lease, epoch, i, b);
  }
  absl::StatusOr<std::string> FetchArtifact(const std::string& s) override {
    return base_.FetchArtifact(s);
  }
  std::atomic<int> left_;

 private:
  CoordinatorClient& base_;
};

// Answers the first `refusals` heartbeats that carry metrics the way a server
// whose store cannot write does: NOT_STORED, nothing kept.
class RefusingClient final : public CoordinatorClient {
 public:
  RefusingClient(CoordinatorClient& base, int refusals) : left_(refusals), base_(base) {}
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& r) override {
    return base_.Register(r);
  }
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& r) override {
    return base_.Lease(r);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    bool metrics = false;
    for (const auto& u : r.updates()) metrics |= u.metrics_size() > 0;
    if (!metrics || left_ <= 0) return base_.Heartbeat(r);
    v1::HeartbeatResponse resp;
    for (const auto& u : r.updates()) {
      auto* v = resp.add_verdicts();
      v->set_lease_id(u.lease_id());
      v->set_action(v1::NOT_STORED);
      v->set_error("the database is full");
    }
    --left_;
    return resp;
  }
  absl::Status Complete(const v1::CompleteRequest& r) override { return base_.Complete(r); }
  absl::Status Fail(const v1::FailRequest& r) override { return base_.Fail(r); }
  absl::Status UploadArtifact(const std::string& lease, int64_t epoch, const v1::ArtifactInfo& i,
                              const std::string& b) override {
    return base_.UploadArtifact(lease, epoch, i, b);
  }
  absl::StatusOr<std::string> FetchArtifact(const std::string& s) override {
    return base_.FetchArtifact(s);
  }
  std::atomic<int> left_;

 private:
  CoordinatorClient& base_;
};

// Reports three metrics, then runs until `client` has refused all its
// heartbeats with metrics.
class WaitForRefusalsRunner final : public JobRunner {
 public:
  explicit WaitForRefusalsRunner(RefusingClient& client) : client_(client) {}
  JobOutcome Run(const v1::Job& job, JobContext& ctx) override {
    for (int step = 1; step <= 3; ++step) {
      v1::Metric m;
      m.set_name("train_loss_step");
      m.set_step(step);
      m.set_value(1.0 / step);
      ctx.ReportMetric(m);
    }
    while (client_.left_ > 0 && !ctx.ShouldStop()) std::this_thread::yield();
    JobOutcome o;
    o.kind = JobOutcome::Kind::kSucceeded;
    return o;
  }

 private:
  RefusingClient& client_;
};

class WorkerLoopTest : public ::testing::Test {
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

  void StartWorker(CoordinatorClient& client, JobRunner& runner, int slots) {
    WorkerOptions options;
    options.slots = slots;
    options.heartbeat_interval_ms = 20;
    options.lease_wait_ms = 200;
    options.initial_backoff_ms = 1;
    options.max_backoff_ms = 5;
    options.work_dir =
        (std::filesystem::temp_directory_path() / absl::StrCat("qsweep_worker_loop_", getpid()))
            .string();
    worker_ = std::make_unique<Worker>(client, runner, options);
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

  // Blocks on WatchSweep until the sweep is finished; returns the last event.
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

  testing::TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<Worker> worker_;
  std::thread worker_thread_;
};

TEST_F(WorkerLoopTest, RunsJobsUploadsOutputsAndReportsMetrics) {
  QuickRunner runner;
  StartWorker(*client_, runner, 2);
  std::string id = Submit();
  auto last = WaitFinished(id);
  EXPECT_EQ(last.summary().succeeded(), 3);
  auto& store = server_->store();
  for (int i = 0; i < 3; ++i) {
    const std::string job_id = absl::StrCat(id, "-", i);
    auto job = store.GetJob(job_id);
    EXPECT_DOUBLE_EQ(job->final_metrics().at("test_acc_epoch"), 0.1 * i);
    auto metrics = store.ListMetrics(job_id, 1, "train_loss_step");
    ASSERT_EQ(metrics->size(), 2u);
    EXPECT_DOUBLE_EQ((*metrics)[1].value(), 0.5);
    auto best = store.FindArtifact(job_id, "best");
    ASSERT_TRUE(best.ok());
    EXPECT_EQ(job->best_checkpoint_sha256(), best->sha256());
    EXPECT_EQ(*store.GetArtifactBytes(best->sha256()), "weights of " + job_id);
  }
}

TEST_F(WorkerLoopTest, ReconnectsWithBackoffWhenTheServerIsAway) {
  FlakyClient flaky(*client_, 5);
  QuickRunner runner;
  StartWorker(flaky, runner, 1);
  std::string id = Submit();
  EXPECT_EQ(WaitFinished(id).summary().succeeded(), 3);
  EXPECT_LE(flaky.left_.load(), 0);
}

TEST_F(WorkerLoopTest, FailuresUseRetriesThenFail) {
  FailingRunner runner;
  StartWorker(*client_, runner, 1);
  std::string id = Submit();
  auto last = WaitFinished(id);
  EXPECT_EQ(last.summary().failed(), 3);
  auto job = server_->store().GetJob(id + "-0");
  EXPECT_THAT(job->error(), HasSubstr("the trial exploded"));
  EXPECT_EQ(job->failures(), 2);  // retries = 1: two attempts
  EXPECT_EQ(server_->store().ListAttempts(id + "-0")->size(), 2u);
}

TEST_F(WorkerLoopTest, CancelReachesTheRunningJob) {
  BlockingRunner runner;
  StartWorker(*client_, runner, 1);
  std::string id = Submit();
  runner.first_started_.get_future().wait();
  grpc::ClientContext ctx;
  v1::CancelSweepRequest req;
  req.set_sweep_id(id);
  v1::CancelResponse resp;
  ASSERT_TRUE(experiments_->CancelSweep(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.cancelled(), 3);
  auto last = WaitFinished(id);
  EXPECT_EQ(last.summary().cancelled(), 3);
  EXPECT_EQ(runner.started_.load(), 1);
}

TEST_F(WorkerLoopTest, StopHandsRunningJobsBack) {
  BlockingRunner runner;
  StartWorker(*client_, runner, 2);
  std::string id = Submit();
  runner.first_started_.get_future().wait();
  worker_->Stop();
  worker_thread_.join();
  auto& store = server_->store();
  JobFilter pending;
  pending.sweep_id = id;
  pending.states = {v1::PENDING};
  auto jobs = store.ListJobs(pending);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 3u);
  for (const auto& j : *jobs) EXPECT_EQ(j.failures(), 0);
}

// The worker keeps within the server's limit of metrics per request.
TEST_F(WorkerLoopTest, MetricBacklogsLargerThanOneRequestAreAllStored) {
  ChattyRunner runner;
  StartWorker(*client_, runner, 1);
  std::string id = Submit();
  EXPECT_EQ(WaitFinished(id).summary().succeeded(), 3);
  grpc::ClientContext ctx;
  v1::GetMetricsRequest req;
  req.set_job_id(id + "-2");
  v1::GetMetricsResponse resp;
  ASSERT_TRUE(experiments_->GetMetrics(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.metrics_size(), ChattyRunner::kMetrics);
}

// Metrics the server could not store are kept by the worker and sent again
// until they are acknowledged.
TEST_F(WorkerLoopTest, MetricsTheServerCouldNotStoreAreSentAgain) {
  RefusingClient refusing(*client_, 3);
  WaitForRefusalsRunner runner(refusing);
  StartWorker(refusing, runner, 1);
  std::string id = Submit();
  EXPECT_EQ(WaitFinished(id).summary().succeeded(), 3);
  EXPECT_EQ(refusing.left_, 0);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    v1::GetMetricsRequest req;
    req.set_job_id(absl::StrCat(id, "-", i));
    v1::GetMetricsResponse resp;
    ASSERT_TRUE(experiments_->GetMetrics(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.metrics_size(), 3) << "job " << i;
  }
}

// An error text over kMaxErrorBytes is shortened by the worker, not refused.
TEST_F(WorkerLoopTest, LongErrorsAreShortenedToTheLimit) {
  VerboseFailingRunner runner;
  StartWorker(*client_, runner, 1);
  std::string id = Submit();
  EXPECT_EQ(WaitFinished(id).summary().failed(), 3);
  auto job = server_->store().GetJob(id + "-0");
  EXPECT_THAT(job->error(), HasSubstr("the trial exploded"));
  EXPECT_THAT(job->error(), HasSubstr("shortened"));
  EXPECT_LE(job->error().size(), kMaxErrorBytes);
  EXPECT_EQ(job->failures(), 2);
}

}  // namespace
}  // namespace qsweep
