// Group commit: calls posted to the coordinator while its strand is busy run
// as one batch with their store writes in one transaction, and are
// acknowledged only after it committed; a failed commit answers every call of
// the batch with UNAVAILABLE and reloads the scheduler from the store. Also
// the SQLite store's batches: savepoints per call, one commit, durable after.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/coordinator.h"
#include "storage/sqlite_store.h"
#include "tests/test_util/forwarding_store.h"

namespace qsweep {
namespace {

// Forwards to an in-memory store; counts batches and can fail a commit.
class BatchCountingStore final : public testing::ForwardingStore {
 public:
  absl::Status BeginBatch() override {
    ++begun;
    open = true;
    return absl::OkStatus();
  }
  absl::Status EndBatch() override {
    open = false;
    ++ended;
    if (!created_in_batch.empty() && fail_commit_with_sweeps.exchange(false)) {
      // Roll back what the batch wrote (the test only creates sweeps in it).
      for (const auto& id : created_in_batch) erased.insert(id);
      created_in_batch.clear();
      return absl::InternalError("disk full");
    }
    created_in_batch.clear();
    ++committed;
    return absl::OkStatus();
  }
  absl::Status CreateSweep(const v1::Sweep& s, const std::vector<v1::Job>& j) override {
    if (open) created_in_batch.push_back(s.id());
    return base->CreateSweep(s, j);
  }
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override {
    auto all = base->ListSweeps();
    if (!all.ok()) return all;
    std::vector<v1::Sweep> kept;
    for (auto& s : *all)
      if (!erased.count(s.id())) kept.push_back(s);
    return kept;
  }
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& f) override {
    auto all = base->ListJobs(f);
    if (!all.ok()) return all;
    std::vector<v1::Job> kept;
    for (auto& j : *all)
      if (!erased.count(j.sweep_id())) kept.push_back(j);
    return kept;
  }

  std::atomic<int> begun{0}, ended{0}, committed{0};
  std::atomic<bool> open{false};
  // Fail the next commit of a batch that created sweeps.
  std::atomic<bool> fail_commit_with_sweeps{false};
  std::vector<std::string> created_in_batch;
  std::set<std::string> erased;
};

constexpr char kSweep[] = "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n";

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    options.tick_interval_ms = 0;
    coordinator_ = std::make_unique<Coordinator>(store_, clock_, options);
    ASSERT_TRUE(coordinator_->Start().ok());
  }

  // Holds the strand until the returned promise is set, so that the calls
  // posted meanwhile queue up.
  std::promise<void> HoldStrand() {
    std::promise<void> release;
    std::promise<void> holding;
    auto released = release.get_future().share();
    coordinator_->Post([released, &holding](Scheduler&) {
      holding.set_value();
      released.wait();
    });
    holding.get_future().wait();
    return release;
  }

  // Posts `n` SubmitSweep calls; each ack records its status and whether the
  // store had committed when it ran.
  std::vector<std::future<std::pair<absl::Status, bool>>> PostSubmits(int n) {
    std::vector<std::future<std::pair<absl::Status, bool>>> acks;
    for (int i = 0; i < n; ++i) {
      auto done = std::make_shared<std::promise<std::pair<absl::Status, bool>>>();
      acks.push_back(done->get_future());
      coordinator_->Post([this, done, i](Scheduler& s) {
        v1::SubmitSweepRequest r;
        r.set_sweep_toml(kSweep);
        r.set_request_id(absl::StrCat("submit-", i));
        auto resp = s.SubmitSweep(user_, r);
        ids_.push_back(resp.ok() ? resp->sweep().id() : "");
        coordinator_->Ack([this, done](const absl::Status& committed) {
          done->set_value({committed, !store_.open.load()});
        });
      });
    }
    return acks;
  }

  Caller user_{"tok-alice", v1::ROLE_USER, "alice"};
  FakeClock clock_;
  BatchCountingStore store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::vector<std::string> ids_;  // on the strand
};

TEST_F(GroupCommitTest, QueuedCallsShareOneCommitAndAreAckedAfterIt) {
  auto release = HoldStrand();
  const int before = store_.committed.load();
  auto acks = PostSubmits(10);
  release.set_value();
  for (auto& a : acks) {
    auto [status, after_commit] = a.get();
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_TRUE(after_commit);
  }
  // The held call's batch, then one batch for all ten.
  EXPECT_EQ(store_.committed.load() - before, 2);  // not 11
  EXPECT_EQ(store_.ListSweeps()->size(), 10u);
}

TEST_F(GroupCommitTest, AFailedCommitAnswersEveryCallUnavailableAndReloads) {
  auto release = HoldStrand();
  store_.fail_commit_with_sweeps = true;
  auto acks = PostSubmits(3);
  release.set_value();
  for (auto& a : acks) {
    auto [status, after_commit] = a.get();
    EXPECT_TRUE(after_commit);
    EXPECT_TRUE(absl::IsUnavailable(status)) << status;
    EXPECT_THAT(status.message(), ::testing::HasSubstr("disk full"));
  }
  // The scheduler reloaded from the store: the sweeps of the failed batch
  // are gone from its memory too, and the next call works.
  std::vector<std::string> failed_ids;
  coordinator_->RunSync([&](Scheduler& s) {
    failed_ids = ids_;
    for (const auto& id : ids_) EXPECT_EQ(s.FindJob(id + "-0"), nullptr) << id;
  });
  ASSERT_EQ(failed_ids.size(), 3u);
  auto again = PostSubmits(1);
  EXPECT_TRUE(again[0].get().first.ok());
}

// The SQLite store: one transaction per batch, a failing call inside undoes
// only its own writes, and everything is durable once EndBatch returned.
TEST(SqliteBatchTest, CallsInABatchCommitTogetherAndFailuresStayLocal) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            absl::StrCat("qsweep_group_commit_", getpid(), ".db"))
                               .string();
  std::filesystem::remove(path);
  SqliteStoreOptions options(path);
  options.synchronous = "FULL";
  {
    auto store = OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->BeginBatch().ok());
    v1::Sweep a;
    a.set_id("sw-a");
    v1::Job j;
    j.set_id("sw-a-0");
    j.set_sweep_id("sw-a");
    ASSERT_TRUE((*store)->CreateSweep(a, {j}).ok());
    // A duplicate: refused, and only its own writes are undone.
    EXPECT_EQ((*store)->CreateSweep(a, {}).code(), absl::StatusCode::kAlreadyExists);
    j.set_state(v1::LEASED);
    ASSERT_TRUE((*store)->UpdateJob(j).ok());
    EXPECT_FALSE((*store)->BeginBatch().ok());  // batches do not nest
    ASSERT_TRUE((*store)->EndBatch().ok());
    EXPECT_FALSE((*store)->EndBatch().ok());  // none open
  }
  auto reopened = OpenSqliteStore(options);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->ListSweeps()->size(), 1u);
  EXPECT_EQ((*reopened)->GetJob("sw-a-0")->state(), v1::LEASED);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace qsweep
