// Packed leases: the scheduler groups compatible pending TRAIN jobs (same
// model, dataset, batch size, optimizer, ...) into one pack per worker slot,
// up to LeaseRequest.pack; each job keeps its own lease. Torch-free.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/scheduler.h"
#include "server/validation.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

// Lab 1 in small: 2 batch sizes x 3 learning rates.
constexpr char kLab[] = R"(
model = "jsc-toy"
dataset = "jsc-synthetic"
[sweep]
name = "lab"
[sweep.grid]
batch_size = [64, 256]
learning_rate = [1e-3, 1e-4, 1e-5]
)";

class SchedulerPacksTest : public ::testing::Test {
 protected:
  SchedulerPacksTest() : store_(NewInMemoryStore()) {
    scheduler_ = std::make_unique<Scheduler>(*store_, clock_, SchedulerOptions{});
    EXPECT_TRUE(scheduler_->Recover().ok());
    v1::RegisterRequest r;
    r.set_name("test");
    r.set_device("cpu");
    r.set_slots(2);
    worker_id_ = scheduler_->Register(worker_, r)->worker_id();
  }

  std::string Submit(const std::string& toml) {
    v1::SubmitSweepRequest r;
    r.set_sweep_toml(toml);
    auto resp = scheduler_->SubmitSweep(user_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->sweep().id() : "";
  }

  v1::LeaseResponse LeaseNow(int max_jobs, int pack) {
    v1::LeaseRequest r;
    r.set_worker_id(worker_id_);
    r.set_max_jobs(max_jobs);
    r.set_pack(pack);
    std::optional<absl::StatusOr<v1::LeaseResponse>> got;
    scheduler_->Lease(worker_, r,
                      [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
    EXPECT_TRUE(got.has_value() && got->ok());
    return got.has_value() && got->ok() ? **got : v1::LeaseResponse();
  }

  // pack number -> job indexes, for the leases of one response.
  static std::map<int, std::vector<int>> Packs(const v1::LeaseResponse& resp) {
    std::map<int, std::vector<int>> packs;
    for (const auto& l : resp.leases()) packs[l.pack()].push_back(l.job().index());
    return packs;
  }

  Caller user_{"tok-alice", v1::ROLE_USER, "alice"};
  Caller worker_{"tok-pool", v1::ROLE_WORKER, "pool"};
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::string worker_id_;
};

TEST_F(SchedulerPacksTest, CompatibleJobsShareOnePackPerSlot) {
  Submit(kLab);
  // Two slots, up to 8 per slot: one pack per batch size.
  auto resp = LeaseNow(2, 8);
  ASSERT_EQ(resp.leases_size(), 6);
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{1, {0, 1, 2}}, {2, {3, 4, 5}}}));
  std::set<std::string> lease_ids;
  for (const auto& l : resp.leases()) {
    lease_ids.insert(l.lease_id());
    EXPECT_EQ(l.job().state(), v1::LEASED);
    EXPECT_EQ(store_->GetJob(l.job().id())->attempt(), 1);  // each job its own attempt
  }
  EXPECT_EQ(lease_ids.size(), 6u);  // and its own lease
}

TEST_F(SchedulerPacksTest, PackLimitSplitsAndOneSlotGetsOnePack) {
  Submit(kLab);
  auto resp = LeaseNow(1, 2);  // one slot, two per pack
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{1, {0, 1}}}));
  resp = LeaseNow(1, 8);  // the rest of batch 64 alone-ish: job 2 with no partner left
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{0, {2}}}));
  resp = LeaseNow(1, 8);
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{1, {3, 4, 5}}}));
}

TEST_F(SchedulerPacksTest, NoPackRequestedMeansOneJobPerSlot) {
  Submit(kLab);
  for (int pack : {0, 1}) {
    auto resp = LeaseNow(2, pack);
    ASSERT_EQ(resp.leases_size(), 2);
    for (const auto& l : resp.leases()) EXPECT_EQ(l.pack(), 0);
  }
}

TEST_F(SchedulerPacksTest, SweepCanOptOut) {
  std::string toml = kLab;
  toml.replace(toml.find("name = \"lab\""), 12, "name = \"lab\"\npack = false");
  Submit(toml);
  auto resp = LeaseNow(2, 8);
  ASSERT_EQ(resp.leases_size(), 2);
  for (const auto& l : resp.leases()) EXPECT_EQ(l.pack(), 0);
}

TEST_F(SchedulerPacksTest, PackKeyIsAValidatedBoolean) {
  std::string toml = kLab;
  toml.replace(toml.find("name = \"lab\""), 12, "name = \"lab\"\npack = \"no\"");
  v1::SubmitSweepRequest r;
  r.set_sweep_toml(toml);
  auto resp = scheduler_->SubmitSweep(user_, r);
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(resp.status().message(), HasSubstr("sweep.pack"));
  EXPECT_THAT(resp.status().message(), HasSubstr("true, false"));
}

TEST_F(SchedulerPacksTest, DifferentKeysOrModelsWithDropoutNeverShareAPack) {
  Submit(R"(
model = "jsc-toy"
dataset = "jsc-synthetic"
[sweep.grid]
training_optimizer = ["adam", "sgd"]
seed = [1, 2]
)");
  auto resp = LeaseNow(2, 8);
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{1, {0, 1}}, {2, {2, 3}}}));
  Submit(R"(
dataset = "jsc-synthetic"
[model]
hidden = [8]
dropout = 0.25
[sweep.grid]
seed = [1, 2]
)");
  resp = LeaseNow(1, 8);
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{0, {0}}}));
}

TEST_F(SchedulerPacksTest, PerSweepConcurrencyCountsEveryPackedJob) {
  std::string toml = kLab;
  toml.replace(toml.find("name = \"lab\""), 12, "name = \"lab\"\nmax_concurrency = 2");
  Submit(toml);
  auto resp = LeaseNow(2, 8);
  EXPECT_EQ(Packs(resp), (std::map<int, std::vector<int>>{{1, {0, 1}}}));
  EXPECT_EQ(LeaseNow(2, 8).leases_size(), 0);
}

TEST_F(SchedulerPacksTest, LeaseRequestPackIsBounded) {
  v1::LeaseRequest r;
  r.set_worker_id("w");
  r.set_max_jobs(1);
  r.set_pack(kMaxPack + 1);
  EXPECT_THAT(Validate(r).message(), HasSubstr("pack"));
  r.set_pack(kMaxPack);
  EXPECT_TRUE(Validate(r).ok());
  r.set_max_jobs(1024);
  EXPECT_THAT(Validate(r).message(), HasSubstr("'max_jobs' x 'pack'"));
}

}  // namespace
}  // namespace qsweep
