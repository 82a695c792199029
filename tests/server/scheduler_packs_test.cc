// Packed leases: the scheduler groups compatible pending TRAIN jobs (same
// model, dataset, batch size, optimizer, ...) into one pack per worker slot,
// up to LeaseRequest.pack; each job keeps its own lease. Torch-free.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
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

// Lab 1 itself: 3 batch sizes x 3 epoch counts x 3 learning rates.
constexpr char kLab1[] = R"(
model = "jsc-toy"
dataset = "jsc-synthetic"
[sweep]
name = "lab1"
[sweep.grid]
batch_size = [64, 256, 1024]
max_epochs = [5, 10, 15]
learning_rate = [1e-3, 1e-5, 1e-7]
)";

TEST(PackSplitTest, EvenWithinThePackLimitAndSharesFreeSlots) {
  EXPECT_EQ(PackSplit(9, 8, 1, 3), 5u);  // 5 + 4, not 8 + 1
  EXPECT_EQ(PackSplit(4, 8, 1, 3), 4u);
  EXPECT_EQ(PackSplit(9, 16, 2, 3), 9u);  // enough groups for the free slots: whole
  EXPECT_EQ(PackSplit(9, 16, 2, 2), 9u);
  EXPECT_EQ(PackSplit(9, 16, 2, 1), 5u);  // the last group over both free slots
  EXPECT_EQ(PackSplit(9, 16, 1, 1), 9u);  // no other slot free: whole
  EXPECT_EQ(PackSplit(9, 16, 4, 2), 5u);  // two free slots for each of two groups
  EXPECT_EQ(PackSplit(3, 16, 8, 1), 1u);  // never more parts than jobs
  EXPECT_EQ(PackSplit(1, 8, 4, 1), 1u);
  EXPECT_EQ(PackSplit(20, 8, 1, 1), 7u);  // 7 + 7 + 6
  EXPECT_EQ(PackSplit(0, 8, 1, 1), 0u);
}

// max_epochs of each job index in a response's packs.
std::map<int, std::multiset<int>> PackEpochs(const v1::LeaseResponse& resp) {
  std::map<int, std::multiset<int>> out;
  for (const auto& l : resp.leases()) {
    auto config = nlohmann::json::parse(l.job().config_json());
    out[l.pack()].insert(config["max_epochs"].get<int>());
  }
  return out;
}

TEST_F(SchedulerPacksTest, AGroupOverThePackLimitSplitsEvenlyLongestFirst) {
  Submit(kLab1);
  // Batch size 64 (jobs 0-8): epochs 5, 10, 15 for each learning rate. Pack
  // limit 8: 5 + 4 jobs, dealt longest first so that both packs run 15 epochs.
  auto first = LeaseNow(1, 8);
  ASSERT_EQ(first.leases_size(), 5);
  EXPECT_EQ(PackEpochs(first), (std::map<int, std::multiset<int>>{{1, {5, 5, 10, 15, 15}}}));
  auto second = LeaseNow(1, 8);
  ASSERT_EQ(second.leases_size(), 4);
  EXPECT_EQ(PackEpochs(second), (std::map<int, std::multiset<int>>{{1, {5, 10, 10, 15}}}));
  for (const auto* resp : {&first, &second})
    for (const auto& l : resp->leases())
      EXPECT_EQ(nlohmann::json::parse(l.job().config_json())["batch_size"], 64);
  // Then batch size 256, whole with a limit of 16.
  auto third = LeaseNow(1, 16);
  ASSERT_EQ(third.leases_size(), 9);
  for (const auto& l : third.leases())
    EXPECT_EQ(nlohmann::json::parse(l.job().config_json())["batch_size"], 256);
}

TEST_F(SchedulerPacksTest, TheLastGroupIsSharedWithWaitingWorkersSoNoSlotIdles) {
  // Two one-slot workers long-polling (as qsweep up's local workers), then a
  // sweep of one group of 9: the first gets 5 jobs and the second 4, instead
  // of one training all 9 while the other idles.
  auto one_slot = [&](const std::string& name) {
    v1::RegisterRequest r;
    r.set_name(name);
    r.set_device("cpu");
    r.set_slots(1);
    return scheduler_->Register(worker_, r)->worker_id();
  };
  const std::string a = one_slot("a"), b = one_slot("b");
  std::map<std::string, std::optional<v1::LeaseResponse>> got;
  auto wait = [&](const std::string& w) {
    v1::LeaseRequest r;
    r.set_worker_id(w);
    r.set_max_jobs(1);
    r.set_pack(16);
    r.set_wait_ms(60000);
    scheduler_->Lease(worker_, r, [&got, w](absl::StatusOr<v1::LeaseResponse> resp) {
      ASSERT_TRUE(resp.ok()) << resp.status();
      got[w] = *resp;
    });
  };
  for (const std::string& w : {a, b}) wait(w);
  EXPECT_TRUE(got.empty());  // both wait
  std::string toml = kLab1;
  toml.replace(toml.find("[64, 256, 1024]"), 15, "[64]");
  Submit(toml);
  ASSERT_TRUE(got[a].has_value() && got[b].has_value());
  EXPECT_EQ(PackEpochs(*got[a]), (std::map<int, std::multiset<int>>{{1, {5, 5, 10, 15, 15}}}));
  EXPECT_EQ(PackEpochs(*got[b]), (std::map<int, std::multiset<int>>{{1, {5, 10, 10, 15}}}));

  // With three groups pending for two free slots, nothing is split: each
  // worker trains a whole batch size.
  got.clear();
  for (const std::string& w : {a, b}) wait(w);
  Submit(kLab1);
  ASSERT_TRUE(got[a].has_value() && got[b].has_value());
  EXPECT_EQ(got[a]->leases_size(), 9);
  EXPECT_EQ(got[b]->leases_size(), 9);
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
