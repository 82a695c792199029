// WatchSweep driven by change notifications, and slow work kept off the
// threads that keep leases alive (issue 8 §4). In-process server with a fake
// clock and no periodic tick: every change a watcher sees comes from an RPC
// of the test, so nothing here waits on time.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "server/sweep_limits.h"
#include "server/work_pool.h"
#include "tests/test_util/forwarding_store.h"
#include "tests/test_util/in_process_server.h"
#include "tests/test_util/test_tokens.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

// Generous bound for waits on events that must happen: only a hang reaches it.
constexpr auto kHang = std::chrono::seconds(60);

std::string GridSweep(int trials, int64_t synthetic_rows = 0) {
  std::string values;
  for (int i = 0; i < trials; ++i) absl::StrAppend(&values, i ? ", " : "", 1e-4 * (i + 1));
  return absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n",
                      synthetic_rows ? absl::StrCat("synthetic_rows = ", synthetic_rows, "\n") : "",
                      "[sweep]\nname = \"watch\"\n[sweep.grid]\nlearning_rate = [", values, "]\n");
}

// Forwards to an in-memory store; counts ListJobs and records whether the
// artifact content was read and written on a WorkPool thread.
class RecordingStore final : public testing::ForwardingStore {
 public:
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& f) override {
    ++list_jobs;
    return base->ListJobs(f);
  }
  absl::Status PutArtifact(const v1::ArtifactInfo& i, const std::string& b) override {
    Note(content_writes_off_pool, content_writes);
    return base->PutArtifact(i, b);
  }
  absl::Status LinkArtifact(const v1::ArtifactInfo& i) override {
    ++links;
    return base->LinkArtifact(i);
  }
  absl::StatusOr<std::string> GetArtifactBytes(const std::string& s) override {
    Note(content_reads_off_pool, content_reads);
    return base->GetArtifactBytes(s);
  }

  std::atomic<int> list_jobs{0}, links{0};
  std::atomic<int> content_reads{0}, content_reads_off_pool{0};
  std::atomic<int> content_writes{0}, content_writes_off_pool{0};

 private:
  static void Note(std::atomic<int>& off_pool, std::atomic<int>& all) {
    ++all;
    if (WorkPool::Current() == nullptr) ++off_pool;
  }
};

class WatchTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override { Start({}); }

  void Start(ExperimentServiceOptions experiments) {
    auto store = std::make_unique<RecordingStore>();
    store_ = store.get();
    StartServer(std::move(store), "", std::move(experiments));
  }

  grpc::Status SubmitSweep(const std::string& toml, v1::SubmitSweepResponse* resp,
                           const std::string& key = "") {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    req.set_idempotency_key(key);
    return experiments_->SubmitSweep(&ctx, req, resp);
  }

  std::string Submit(const std::string& toml) { return SubmitToml(toml); }
  std::string Register() { return RegisterWorker(/*slots=*/4); }

  v1::GrantedLease LeaseOne(const std::string& worker) {
    const v1::LeaseResponse resp = Lease(worker, 1);
    EXPECT_EQ(resp.leases_size(), 1);
    return resp.leases_size() ? resp.leases(0) : v1::GrantedLease();
  }

  v1::LeaseAction Heartbeat(const std::string& worker, const v1::GrantedLease& lease, int step) {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_worker_id(worker);
    auto* u = req.add_updates();
    u->set_lease_id(lease.lease_id());
    u->set_epoch(lease.epoch());
    u->mutable_progress()->set_global_step(step);
    v1::HeartbeatResponse resp;
    grpc::Status s = workers_->Heartbeat(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.verdicts_size() ? resp.verdicts(0).action() : v1::LEASE_ACTION_UNSPECIFIED;
  }

  void CancelJob(const std::string& job_id) {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    v1::CancelResponse resp;
    ASSERT_TRUE(experiments_->CancelJob(&ctx, req, &resp).ok());
  }

  // One watch stream; Look() reads the events of one look (until more_jobs
  // is false) and returns the jobs it carried.
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::WatchSweepEvent>> reader;
    v1::SweepSummary summary;
    std::vector<v1::Job> Look() {
      std::vector<v1::Job> jobs;
      v1::WatchSweepEvent event;
      do {
        if (!reader->Read(&event)) {
          ADD_FAILURE() << "the stream ended within a look";
          return jobs;
        }
        summary = event.summary();
        jobs.insert(jobs.end(), event.jobs().begin(), event.jobs().end());
      } while (event.more_jobs());
      return jobs;
    }
  };
  std::unique_ptr<Watch> OpenWatch(const std::string& sweep_id, int page_size = 0) {
    auto w = std::make_unique<Watch>();
    v1::WatchSweepRequest req;
    req.set_sweep_id(sweep_id);
    req.set_page_size(page_size);
    w->reader = experiments_->WatchSweep(&w->ctx, req);
    return w;
  }

  RecordingStore* store_ = nullptr;
};

TEST_F(WatchTest, TheFirstLookHasEveryJobAndLaterLooksOnlyWhatChanged) {
  const std::string id = Submit(GridSweep(30));
  auto watch = OpenWatch(id, 8);
  std::vector<v1::Job> first = watch->Look();  // 4 events of at most 8 jobs
  ASSERT_EQ(first.size(), 30u);
  std::set<int> indexes;
  for (const auto& j : first) {
    indexes.insert(j.index());
    EXPECT_EQ(j.state(), v1::PENDING);
    EXPECT_TRUE(j.lease_id().empty());
  }
  EXPECT_EQ(indexes.size(), 30u);
  EXPECT_EQ(watch->summary.pending(), 30);

  const std::string worker = Register();
  v1::GrantedLease lease = LeaseOne(worker);
  std::vector<v1::Job> changed = watch->Look();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].id(), lease.job().id());
  EXPECT_EQ(changed[0].state(), v1::LEASED);
  EXPECT_TRUE(changed[0].lease_id().empty());  // a secret of the worker
  EXPECT_EQ(watch->summary.pending(), 29);
  EXPECT_EQ(watch->summary.leased(), 1);

  ASSERT_EQ(Heartbeat(worker, lease, 7), v1::CONTINUE);
  changed = watch->Look();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].state(), v1::RUNNING);
  EXPECT_EQ(changed[0].progress().global_step(), 7);
  EXPECT_EQ(watch->summary.running(), 1);
  watch->ctx.TryCancel();
}

TEST_F(WatchTest, ChangesReachWatchersWithoutListingJobs) {
  const std::string id = Submit(GridSweep(5));
  auto watch = OpenWatch(id);
  ASSERT_EQ(watch->Look().size(), 5u);
  const int listed = store_->list_jobs.load();
  const std::string worker = Register();
  v1::GrantedLease lease = LeaseOne(worker);
  ASSERT_EQ(watch->Look().size(), 1u);
  ASSERT_EQ(Heartbeat(worker, lease, 1), v1::CONTINUE);
  ASSERT_EQ(watch->Look().size(), 1u);
  CancelJob(absl::StrCat(id, "-4"));
  std::vector<v1::Job> changed = watch->Look();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].state(), v1::CANCELLED);
  // Pushed from the scheduler after each commit: no watcher re-read the sweep.
  EXPECT_EQ(store_->list_jobs.load(), listed);
  watch->ctx.TryCancel();
}

TEST_F(WatchTest, EveryWatcherReceivesEachChange) {
  const std::string id = Submit(GridSweep(200));
  std::vector<std::unique_ptr<Watch>> watches;
  for (int i = 0; i < 50; ++i) watches.push_back(OpenWatch(id));
  for (auto& w : watches) ASSERT_EQ(w->Look().size(), 200u);
  EXPECT_EQ(server_->watch_hub().feeds(), 1u);  // one feed, shared
  EXPECT_EQ(server_->watch_hub().watchers(), 50u);
  CancelJob(absl::StrCat(id, "-7"));
  for (auto& w : watches) {
    std::vector<v1::Job> changed = w->Look();
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0].index(), 7);
    EXPECT_EQ(changed[0].state(), v1::CANCELLED);
    EXPECT_EQ(w->summary.cancelled(), 1);
    EXPECT_EQ(w->summary.pending(), 199);
  }
  for (auto& w : watches) w->ctx.TryCancel();
  EXPECT_TRUE(server_->watch_hub().WaitForWatchers(0, kHang));
}

TEST_F(WatchTest, AClientThatLeavesFreesItsSubscription) {
  const std::string id = Submit(GridSweep(3));
  auto stays = OpenWatch(id);
  ASSERT_EQ(stays->Look().size(), 3u);
  {
    auto leaves = OpenWatch(id);
    ASSERT_EQ(leaves->Look().size(), 3u);
    ASSERT_EQ(server_->watch_hub().watchers(), 2u);
    leaves->ctx.TryCancel();  // while its watcher waits for a change
    v1::WatchSweepEvent event;
    EXPECT_FALSE(leaves->reader->Read(&event));
    EXPECT_EQ(leaves->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(server_->watch_hub().WaitForWatchers(1, kHang));
  EXPECT_EQ(server_->watch_hub().feeds(), 1u);
  // The one left still gets changes.
  CancelJob(absl::StrCat(id, "-0"));
  EXPECT_EQ(stays->Look().size(), 1u);
  stays->ctx.TryCancel();
  EXPECT_TRUE(server_->watch_hub().WaitForWatchers(0, kHang));
  EXPECT_EQ(server_->watch_hub().feeds(), 0u);  // the last watcher takes the feed with it
}

TEST_F(WatchTest, TheStreamEndsWithTheLookThatFindsTheSweepFinished) {
  const std::string id = Submit(GridSweep(2));
  auto watch = OpenWatch(id);
  ASSERT_EQ(watch->Look().size(), 2u);
  grpc::ClientContext ctx;
  v1::CancelSweepRequest req;
  req.set_sweep_id(id);
  v1::CancelResponse resp;
  ASSERT_TRUE(experiments_->CancelSweep(&ctx, req, &resp).ok());
  std::vector<v1::Job> last = watch->Look();
  EXPECT_EQ(last.size(), 2u);
  EXPECT_EQ(watch->summary.cancelled(), 2);
  v1::WatchSweepEvent event;
  EXPECT_FALSE(watch->reader->Read(&event));
  EXPECT_TRUE(watch->reader->Finish().ok());
  // Watching a finished sweep: one look, then the end.
  auto again = OpenWatch(id);
  EXPECT_EQ(again->Look().size(), 2u);
  EXPECT_FALSE(again->reader->Read(&event));
  EXPECT_TRUE(again->reader->Finish().ok());
}

TEST_F(WatchTest, ShutdownEndsOpenWatches) {
  const std::string id = Submit(GridSweep(2));
  auto watch = OpenWatch(id);
  ASSERT_EQ(watch->Look().size(), 2u);
  server_->Shutdown();
  v1::WatchSweepEvent event;
  EXPECT_FALSE(watch->reader->Read(&event));
  EXPECT_EQ(watch->reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(WatchTest, AnotherUsersSweepCannotBeWatched) {
  const std::string id = Submit(GridSweep(2));
  auto bob = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.bob));
  grpc::ClientContext ctx;
  v1::WatchSweepRequest req;
  req.set_sweep_id(id);
  auto reader = bob->WatchSweep(&ctx, req);
  v1::WatchSweepEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(server_->watch_hub().watchers(), 0u);
}

// A dataset preparer that holds the preparation of `synthetic_rows` =
// kHeldRows until released, and answers every other one at once.
struct HeldPreparer {
  static constexpr int64_t kHeldRows = kMaxSyntheticRows;
  std::promise<bool> entered;  // value: ran on a WorkPool thread
  std::shared_future<void> release;
  std::atomic<bool> holding{false};
  std::atomic<int> calls{0};

  DatasetPreparer Fn(std::shared_future<void> until) {
    release = until;
    return [this](const std::vector<nlohmann::json>& configs, Store&,
                  const DatasetServeOptions&) -> absl::StatusOr<ServedDatasets> {
      ++calls;
      ServedDatasets served;
      for (const auto& c : configs) {
        if (c.value("synthetic_rows", int64_t{0}) == kHeldRows) {
          holding = true;
          entered.set_value(WorkPool::Current() != nullptr);
          release.wait();
          holding = false;
        }
        served.sha256.push_back(Sha256Hex(c.dump()));
        ++served.distinct;
      }
      return served;
    };
  }
};

TEST_F(WatchTest, HeartbeatsAreAnsweredWhileALargeDatasetIsBeingPrepared) {
  HeldPreparer preparer;
  std::promise<void> release;
  ExperimentServiceOptions options;
  options.serve_datasets = true;
  options.dataset_preparer = preparer.Fn(release.get_future().share());
  Start(options);

  const std::string small = Submit(GridSweep(2));
  const std::string worker = Register();
  v1::GrantedLease lease = LeaseOne(worker);
  ASSERT_EQ(lease.job().sweep_id(), small);
  EXPECT_FALSE(lease.job().dataset_sha256().empty());
  auto watch = OpenWatch(small);
  ASSERT_EQ(watch->Look().size(), 2u);

  // The large submission is held inside its dataset preparation.
  v1::SubmitSweepResponse large_resp;
  std::future<grpc::Status> large = std::async(std::launch::async, [&] {
    return SubmitSweep(GridSweep(3, HeldPreparer::kHeldRows), &large_resp);
  });
  std::future<bool> entered = preparer.entered.get_future();
  ASSERT_EQ(entered.wait_for(kHang), std::future_status::ready);
  EXPECT_TRUE(entered.get()) << "datasets must be prepared on the server's work pool";

  // Meanwhile every heartbeat is answered and renews the lease, watchers see
  // the progress, and the held submission has not been answered.
  for (int step = 1; step <= 20; ++step) {
    ASSERT_EQ(Heartbeat(worker, lease, step), v1::CONTINUE) << "heartbeat " << step;
    std::vector<v1::Job> changed = watch->Look();
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0].progress().global_step(), step);
  }
  EXPECT_TRUE(preparer.holding);
  EXPECT_EQ(large.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

  release.set_value();
  grpc::Status s = large.get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(large_resp.sweep().num_jobs(), 3);
  watch->ctx.TryCancel();
  server_.reset();  // before the preparer it was given
}

TEST_F(WatchTest, ASubmissionExpandsItsSweepOnce) {
  HeldPreparer preparer;
  std::promise<void> never;
  ExperimentServiceOptions options;
  options.serve_datasets = true;  // the path that expanded twice
  options.dataset_preparer = preparer.Fn(never.get_future().share());
  Start(options);
  int64_t before = ServiceSweepExpansions();
  v1::SubmitSweepResponse resp;
  ASSERT_TRUE(SubmitSweep(GridSweep(4), &resp, "key-1").ok());
  EXPECT_EQ(ServiceSweepExpansions() - before, 1);
  EXPECT_EQ(preparer.calls.load(), 1);
  // A repeated submission is answered with the first sweep, unexpanded.
  before = ServiceSweepExpansions();
  v1::SubmitSweepResponse again;
  ASSERT_TRUE(SubmitSweep(GridSweep(4), &again, "key-1").ok());
  EXPECT_TRUE(again.existing());
  EXPECT_EQ(again.sweep().id(), resp.sweep().id());
  EXPECT_EQ(ServiceSweepExpansions() - before, 0);
  EXPECT_EQ(preparer.calls.load(), 1);
  // A bad sweep file is still refused with the field named.
  v1::SubmitSweepResponse bad;
  grpc::Status s = SubmitSweep("model = \"jsc-tiny\"\n[sweep.grid]\nnot_a_key = [1, 2]\n", &bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("not_a_key"));
  server_.reset();  // before the preparer it was given
}

TEST_F(WatchTest, ArtifactContentIsReadAndWrittenOnTheWorkPool) {
  const std::string id = Submit(GridSweep(1));
  const std::string worker = Register();
  v1::GrantedLease lease = LeaseOne(worker);
  const std::string content(3 << 20, 'q');
  const std::string sha = Sha256Hex(content);
  {
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = workers_->UploadArtifact(&ctx, &resp);
    v1::ArtifactChunk chunk;
    chunk.mutable_info()->set_sha256(sha);
    chunk.mutable_info()->set_kind("checkpoint");
    chunk.mutable_info()->set_job_id(lease.job().id());
    chunk.mutable_info()->set_name("best");
    chunk.set_lease_id(lease.lease_id());
    chunk.set_lease_epoch(lease.epoch());
    chunk.set_data(content);
    ASSERT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.info().size_bytes(), static_cast<int64_t>(content.size()));
    EXPECT_EQ(resp.info().attempt(), 1);
  }
  EXPECT_EQ(store_->links.load(), 1);  // the link alone on the strand
  {
    grpc::ClientContext ctx;
    v1::DownloadArtifactRequest req;
    req.set_job_id(lease.job().id());
    req.set_name("best");
    auto reader = experiments_->DownloadArtifact(&ctx, req);
    v1::ArtifactChunk chunk;
    std::string got;
    while (reader->Read(&chunk)) got += chunk.data();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, content);
  }
  {  // a wrong hash is refused after the pool hashed it
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = workers_->UploadArtifact(&ctx, &resp);
    v1::ArtifactChunk chunk;
    chunk.mutable_info()->set_sha256(std::string(64, 'a'));
    chunk.mutable_info()->set_kind("checkpoint");
    chunk.mutable_info()->set_job_id(lease.job().id());
    chunk.mutable_info()->set_name("last");
    chunk.set_lease_id(lease.lease_id());
    chunk.set_lease_epoch(lease.epoch());
    chunk.set_data("abc");
    ASSERT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("hashes to"));
  }
  EXPECT_GE(store_->content_writes.load(), 1);
  EXPECT_GE(store_->content_reads.load(), 1);
  EXPECT_EQ(store_->content_writes_off_pool.load(), 0);
  EXPECT_EQ(store_->content_reads_off_pool.load(), 0);
  (void)id;
}

TEST(WorkPoolTest, OneHeldTaskDoesNotHoldTheOthersAndTheDestructorDrains) {
  std::atomic<int> ran{0}, on_pool{0};
  std::atomic<bool> held_done{false};
  std::promise<void> gate, hundred;
  std::shared_future<void> open = gate.get_future().share();
  {
    WorkPool pool(2, "test-pool");
    EXPECT_EQ(WorkPool::Current(), nullptr);
    pool.Post([&] {
      open.wait();
      held_done = WorkPool::Current() == &pool;
    });
    for (int i = 0; i < 100; ++i)
      pool.Post([&] {
        if (WorkPool::Current() == &pool) ++on_pool;
        if (++ran == 100) hundred.set_value();
      });
    // All 100 run on the other thread while the first task is held.
    EXPECT_EQ(hundred.get_future().wait_for(kHang), std::future_status::ready);
    EXPECT_FALSE(held_done);
    pool.Post([&] { ++ran; });
    gate.set_value();
  }  // the destructor runs what is queued, then joins
  EXPECT_TRUE(held_done);
  EXPECT_EQ(ran.load(), 101);
  EXPECT_EQ(on_pool.load(), 100);
}

}  // namespace
}  // namespace qsweep
