// Packed trials through the service: a real in-process server, the worker loop
// and the TRAIN runner (LibTorch). Packed trials give the final metrics of the
// same trials trained one per slot, each reported the moment it ends; cancel
// of one packed trial leaves the others of its pack running.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/in_process_worker.h"
#include "worker/coordinator_client.h"
#include "worker/train_job_runner.h"
#include "worker/worker.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

// Four jsc-tiny trials of one batch size: two epochs counts (the 1-epoch ones
// leave the pack early) and two learning rates.
constexpr char kSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
synthetic_rows = 1200
batch_size = 64
log_every_n_steps = 5
[sweep]
pack = PACK
[sweep.grid]
max_epochs = [1, 3]
learning_rate = [1e-3, 1e-2]
)";

class PackedServiceTest : public testing::InProcessWorkerTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("qsweep_packed_service_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    InProcessWorkerTest::SetUp();
    TrainJobRunnerOptions runner_options;
    runner_options.data_dir = (dir_ / "data").string();
    runner_ = std::make_unique<TrainJobRunner>(runner_options);
    WorkerOptions options_w = QuickWorkerOptions(1, "packed_service");
    options_w.pack = 8;
    options_w.work_dir = (dir_ / "work").string();
    options_w.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.emplace_back(line);
    };
    StartWorker(*client_, *runner_, options_w);
  }
  void TearDown() override {
    InProcessWorkerTest::TearDown();
    worker_.reset();  // before runner_, which it uses
    fs::remove_all(dir_);
  }

  int PackedLeases() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& line : log_) n += line.find(", pack ") != std::string::npos;
    return n;
  }

  void CancelJob(const std::string& job_id) {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    v1::CancelResponse resp;
    ASSERT_TRUE(experiments_->CancelJob(&ctx, req, &resp).ok());
  }

  static std::string WithPack(const char* value) {
    std::string toml = kSweep;
    toml.replace(toml.find("PACK"), 4, value);
    return toml;
  }

  fs::path dir_;
  std::unique_ptr<TrainJobRunner> runner_;
  std::mutex mu_;
  std::vector<std::string> log_;  // guarded by mu_
};

TEST_F(PackedServiceTest, PackedTrialsMatchUnpackedOnesAndCancelLeavesTheOthersRunning) {
  // 1. The same four trials, one per slot (pack = false), then packed.
  const std::string alone = SubmitToml(WithPack("false"));
  WatchUntil(alone);
  EXPECT_EQ(PackedLeases(), 0);
  const std::string packed = SubmitToml(WithPack("true"));
  WatchUntil(packed);
  EXPECT_EQ(PackedLeases(), 4);  // all four trials in one pack
  auto& store = server_->store();
  for (int i = 0; i < 4; ++i) {
    auto a = store.GetJob(absl::StrCat(alone, "-", i));
    auto p = store.GetJob(absl::StrCat(packed, "-", i));
    ASSERT_TRUE(a.ok() && p.ok());
    ASSERT_EQ(a->state(), v1::SUCCEEDED) << a->error();
    ASSERT_EQ(p->state(), v1::SUCCEEDED) << p->error();
    EXPECT_FALSE(p->best_checkpoint_sha256().empty());
    for (const char* m : {"val_loss_epoch", "val_acc_epoch", "test_loss_epoch", "test_acc_epoch",
                          "best_val_loss_epoch", "best_epoch"}) {
      ASSERT_TRUE(a->final_metrics().count(m) && p->final_metrics().count(m)) << m;
      EXPECT_NEAR(p->final_metrics().at(m), a->final_metrics().at(m), 1e-5) << "trial " << i << m;
    }
    // Each trial kept its own metric history (its own attempt).
    auto am = store.ListMetrics(a->id(), 1, "val_acc_epoch");
    auto pm = store.ListMetrics(p->id(), 1, "val_acc_epoch");
    ASSERT_TRUE(am.ok() && pm.ok());
    ASSERT_EQ(pm->size(), am->size());
    ASSERT_EQ(static_cast<int64_t>(pm->size()), i < 2 ? 1 : 3);
    for (size_t k = 0; k < pm->size(); ++k) EXPECT_NEAR((*pm)[k].value(), (*am)[k].value(), 1e-6);
  }

  // 2. Four packed trials, two of which only end by cancel: the short ones
  // are reported while the pack goes on; cancelling one long trial leaves the
  // other one training.
  std::string toml = WithPack("true");
  toml.replace(toml.find("max_epochs = [1, 3]"), 19, "max_epochs = [1, 10000]");
  const std::string id = SubmitToml(toml);
  const std::string short0 = id + "-0", short1 = id + "-1", long2 = id + "-2", long3 = id + "-3";
  auto jobs = WatchUntil(id, [&](const auto& j) {
    return j.count(short0) && j.at(short0).state() == v1::SUCCEEDED && j.count(short1) &&
           j.at(short1).state() == v1::SUCCEEDED;
  });
  // Still leased to the worker: RUNNING, or LEASED until its first heartbeat.
  for (const auto* id_of_long : {&long2, &long3}) {
    const v1::JobState st = jobs.at(*id_of_long).state();
    EXPECT_TRUE(st == v1::LEASED || st == v1::RUNNING) << *id_of_long << " " << st;
  }
  CancelJob(long2);
  int64_t step_at_cancel = -1;
  jobs = WatchUntil(id, [&](const auto& j) {
    if (j.at(long2).state() != v1::CANCELLED) return false;
    if (step_at_cancel < 0) step_at_cancel = j.at(long3).progress().global_step();
    return j.at(long3).progress().global_step() > step_at_cancel;  // still training
  });
  EXPECT_EQ(jobs.at(long2).state(), v1::CANCELLED);
  EXPECT_EQ(jobs.at(long3).state(), v1::RUNNING);
  CancelJob(long3);
  jobs = WatchUntil(id);
  EXPECT_EQ(jobs.at(long3).state(), v1::CANCELLED);
  EXPECT_EQ(jobs.at(short0).state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace qsweep
