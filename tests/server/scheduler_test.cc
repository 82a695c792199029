#include "server/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "server/job_metrics.h"
#include "server/job_state.h"
#include "tests/test_util/forwarding_store.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

std::string SweepToml(int trials, int max_concurrency = 0, int retries = 0, int priority = 0) {
  std::string seeds;
  for (int i = 0; i < trials; ++i) absl::StrAppend(&seeds, i ? ", " : "", i);
  return absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n[sweep]\n",
                      "max_concurrency = ", max_concurrency, "\nretries = ", retries,
                      "\npriority = ", priority, "\n[sweep.grid]\nseed = [", seeds, "]\n");
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : store_(NewInMemoryStore()) { Restart(); }

  // A new scheduler over the same store, as after a server restart.
  void Restart() {
    scheduler_ = std::make_unique<Scheduler>(*store_, clock_, options_);
    ASSERT_TRUE(scheduler_->Recover().ok());
  }

  std::string Submit(const std::string& toml, const std::string& key = "") {
    v1::SubmitSweepRequest r;
    r.set_sweep_toml(toml);
    r.set_idempotency_key(key);
    auto resp = scheduler_->SubmitSweep(user_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->sweep().id() : "";
  }

  std::string RegisterWorker() {
    v1::RegisterRequest r;
    r.set_name("test");
    r.set_device("cpu");
    r.set_slots(4);
    return scheduler_->Register(worker_, r)->worker_id();
  }

  // Lease without waiting; returns the response.
  v1::LeaseResponse LeaseNow(const std::string& worker, int max_jobs,
                             const std::string& request_id = "") {
    v1::LeaseRequest r;
    r.set_worker_id(worker);
    r.set_max_jobs(max_jobs);
    r.set_request_id(request_id);
    std::optional<absl::StatusOr<v1::LeaseResponse>> got;
    scheduler_->Lease(worker_, r,
                      [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
    EXPECT_TRUE(got.has_value());
    EXPECT_TRUE(got->ok()) << got->status();
    return got->ok() ? **got : v1::LeaseResponse();
  }

  v1::HeartbeatResponse Beat(const std::string& worker, const v1::GrantedLease& lease,
                             std::vector<v1::Metric> metrics = {}) {
    v1::HeartbeatRequest r;
    r.set_worker_id(worker);
    auto* u = r.add_updates();
    u->set_lease_id(lease.lease_id());
    u->set_epoch(lease.epoch());
    u->mutable_progress()->set_epoch(1);
    for (auto& m : metrics) *u->add_metrics() = m;
    auto resp = scheduler_->Heartbeat(worker_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return *resp;
  }

  absl::Status Complete(const v1::GrantedLease& lease, double acc = 0.5) {
    v1::CompleteRequest r;
    r.set_lease_id(lease.lease_id());
    r.set_epoch(lease.epoch());
    (*r.mutable_final_metrics())["test_acc_epoch"] = acc;
    return scheduler_->Complete(worker_, r);
  }

  absl::Status Fail(const v1::GrantedLease& lease, bool hand_back = false) {
    v1::FailRequest r;
    r.set_lease_id(lease.lease_id());
    r.set_epoch(lease.epoch());
    r.set_error("boom");
    r.set_hand_back(hand_back);
    return scheduler_->Fail(worker_, r);
  }

  v1::JobState StateOf(const std::string& job_id) { return store_->GetJob(job_id)->state(); }

  // Stores `content` as the lease's job's artifact `name`, the way the
  // UploadArtifact RPC does (lease check, then a link with the attempt).
  std::string Upload(const v1::GrantedLease& lease, const std::string& name,
                     const std::string& content) {
    auto attempt =
        scheduler_->CheckUpload(worker_, lease.lease_id(), lease.epoch(), lease.job().id());
    EXPECT_TRUE(attempt.ok()) << attempt.status();
    v1::ArtifactInfo info;
    info.set_sha256(Sha256Hex(content));
    info.set_kind("checkpoint");
    info.set_job_id(lease.job().id());
    info.set_name(name);
    info.set_attempt(attempt.ok() ? *attempt : 0);
    EXPECT_TRUE(store_->PutArtifact(info, content).ok());
    return info.sha256();
  }

  Caller user_{"tok-alice", v1::ROLE_USER, "alice"};
  Caller worker_{"tok-pool", v1::ROLE_WORKER, "pool"};
  FakeClock clock_;
  SchedulerOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, GrantsInPriorityThenSubmissionOrder) {
  std::string low = Submit(SweepToml(2, 0, 0, 0));
  std::string high = Submit(SweepToml(1, 0, 0, 5));
  std::string w = RegisterWorker();
  auto resp = LeaseNow(w, 3);
  ASSERT_EQ(resp.leases_size(), 3);
  EXPECT_EQ(resp.leases(0).job().id(), high + "-0");
  EXPECT_EQ(resp.leases(1).job().id(), low + "-0");
  EXPECT_EQ(resp.leases(2).job().id(), low + "-1");
  EXPECT_EQ(resp.leases(0).epoch(), 1);
  EXPECT_EQ(resp.leases(0).job().state(), v1::LEASED);
  EXPECT_EQ(StateOf(low + "-1"), v1::LEASED);  // persisted
  auto attempts = store_->ListAttempts(low + "-0");
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].worker_id(), w);
  EXPECT_EQ(LeaseNow(w, 3).leases_size(), 0);
}

TEST_F(SchedulerTest, PerSweepConcurrencyIsRespected) {
  std::string s = Submit(SweepToml(4, 2));
  std::string w = RegisterWorker();
  auto first = LeaseNow(w, 4);
  ASSERT_EQ(first.leases_size(), 2);
  EXPECT_EQ(LeaseNow(w, 4).leases_size(), 0);
  ASSERT_TRUE(Complete(first.leases(0)).ok());
  auto next = LeaseNow(w, 4);
  ASSERT_EQ(next.leases_size(), 1);
  EXPECT_EQ(next.leases(0).job().id(), s + "-2");
}

TEST_F(SchedulerTest, HeartbeatRunsRenewsAndStoresMetrics) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  auto lease = LeaseNow(w, 1).leases(0);
  v1::Metric m;
  m.set_name("train_loss_step");
  m.set_step(50);
  m.set_value(1.25);
  auto resp = Beat(w, lease, {m});
  ASSERT_EQ(resp.verdicts_size(), 1);
  EXPECT_EQ(resp.verdicts(0).action(), v1::CONTINUE);
  EXPECT_EQ(StateOf(s + "-0"), v1::RUNNING);
  EXPECT_EQ(store_->GetJob(s + "-0")->progress().epoch(), 1);
  auto metrics = store_->ListMetrics(s + "-0", 1, "");
  ASSERT_EQ(metrics->size(), 1u);
  EXPECT_DOUBLE_EQ((*metrics)[0].value(), 1.25);
  // Renewed: 20 s + 20 s without expiry because of the heartbeat in between.
  clock_.AdvanceMs(20000);
  Beat(w, lease);
  clock_.AdvanceMs(20000);
  scheduler_->Tick();
  EXPECT_EQ(StateOf(s + "-0"), v1::RUNNING);
  ASSERT_TRUE(Complete(lease, 0.75).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::SUCCEEDED);
  EXPECT_DOUBLE_EQ(store_->GetJob(s + "-0")->final_metrics().at("test_acc_epoch"), 0.75);
  // Repeating an accepted Complete is harmless.
  EXPECT_TRUE(Complete(lease, 0.75).ok());
  EXPECT_EQ((*store_->ListAttempts(s + "-0"))[0].state(), v1::SUCCEEDED);
}

// Resume states (issue 9 §1): stored under the lease as the job's only one;
// kept when a lease expires (the worker died) or the job is handed back, and
// carried by the next lease, whose attempt records resumed_from_epoch; a job
// with one is not packed; dropped when an attempt fails with an error and
// when the job succeeds; a stale lease stores nothing. The metric history
// (JobMetrics) takes the epochs before the resume from the earlier attempt.
TEST_F(SchedulerTest, ResumeStatesFollowTheJobAcrossAttempts) {
  std::string s = Submit(SweepToml(2, 0, /*retries=*/2));
  const std::string job = s + "-0";
  std::string w1 = RegisterWorker(), w2 = RegisterWorker();
  auto leases = LeaseNow(w1, 1).leases();
  ASSERT_EQ(leases.size(), 1);
  const v1::GrantedLease first = leases[0];
  ASSERT_EQ(first.job().id(), job);
  EXPECT_TRUE(first.job().resume_sha256().empty());
  auto metric = [](const char* name, int64_t step, int64_t epoch, double v) {
    v1::Metric m;
    m.set_name(name);
    m.set_step(step);
    m.set_epoch(epoch);
    m.set_value(v);
    return m;
  };
  // Epochs 0, 1 and a part of epoch 2 on the first worker.
  Beat(w1, first,
       {metric("val_loss_epoch", 10, 0, 1.0), metric("val_loss_epoch", 20, 1, 0.9),
        metric("train_loss_step", 25, 2, 0.8)});
  auto store_state = [&](const v1::GrantedLease& lease, int64_t epochs, const std::string& bytes) {
    v1::ArtifactInfo info;
    info.set_sha256(Sha256Hex(bytes));
    info.set_kind("resume");
    info.set_name("resume");
    info.set_job_id(lease.job().id());
    info.set_epochs_done(epochs);
    return scheduler_->StoreResumeState(worker_, lease.lease_id(), lease.epoch(), info, bytes);
  };
  ASSERT_TRUE(store_state(first, 1, "state-1").ok());
  ASSERT_TRUE(store_state(first, 2, "state-2").ok());  // replaces state-1
  EXPECT_EQ(store_->GetJob(job)->resume_epochs(), 2);
  EXPECT_EQ(*store_->GetResumeState(job, nullptr), "state-2");
  // The worker dies: the lease expires, the state stays.
  clock_.AdvanceMs(options_.lease_ttl_ms + 1);
  scheduler_->Tick();
  ASSERT_EQ(StateOf(job), v1::PENDING);
  EXPECT_EQ(store_->GetJob(job)->resume_sha256(), Sha256Hex("state-2"));
  // A stale lease stores nothing.
  EXPECT_EQ(store_state(first, 3, "late").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store_->GetResumeState(job, nullptr), "state-2");
  // The next lease carries it; the resumed job is not packed with job -1.
  v1::LeaseRequest r;
  r.set_worker_id(w2);
  r.set_max_jobs(1);
  r.set_pack(8);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  scheduler_->Lease(worker_, r, [&](absl::StatusOr<v1::LeaseResponse> resp) { got = resp; });
  ASSERT_TRUE(got.has_value() && got->ok());
  ASSERT_EQ((*got)->leases_size(), 1);  // alone
  const v1::GrantedLease second = (*got)->leases(0);
  ASSERT_EQ(second.job().id(), job);
  EXPECT_EQ(second.job().resume_sha256(), Sha256Hex("state-2"));
  EXPECT_EQ(second.job().resume_epochs(), 2);
  auto attempts = store_->ListAttempts(job);
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[1].resumed_from_epoch(), 2);
  // The resumed attempt reports from epoch 2 on; the history shows each
  // epoch once (the first attempt's partial epoch 2 is left out).
  Beat(w2, second, {metric("train_loss_step", 25, 2, 0.7), metric("val_loss_epoch", 30, 2, 0.6)});
  auto history = JobMetrics(*store_, *store_->GetJob(job), "");
  ASSERT_TRUE(history.ok()) << history.status();
  std::vector<std::tuple<std::string, int64_t, double>> seen;
  for (const auto& m : *history) seen.emplace_back(m.name(), m.step(), m.value());
  EXPECT_EQ(seen,
            (std::vector<std::tuple<std::string, int64_t, double>>{{"train_loss_step", 25, 0.7},
                                                                   {"val_loss_epoch", 10, 1.0},
                                                                   {"val_loss_epoch", 20, 0.9},
                                                                   {"val_loss_epoch", 30, 0.6}}));
  // A hand-back keeps the state (and uses no retry).
  ASSERT_TRUE(store_state(second, 3, "state-3").ok());
  ASSERT_TRUE(Fail(second, /*hand_back=*/true).ok());
  EXPECT_EQ(store_->GetJob(job)->resume_epochs(), 3);
  EXPECT_EQ(store_->GetJob(job)->failures(), 0);
  // A failure with an error drops it: the retry starts from scratch.
  const v1::GrantedLease third = LeaseNow(w1, 1).leases(0);
  ASSERT_EQ(third.job().id(), job);
  EXPECT_EQ((*store_->ListAttempts(job))[2].resumed_from_epoch(), 3);
  ASSERT_TRUE(Fail(third).ok());
  EXPECT_TRUE(store_->GetJob(job)->resume_sha256().empty());
  EXPECT_EQ(store_->GetResumeState(job, nullptr).status().code(), absl::StatusCode::kNotFound);
  // Success drops it too.
  const v1::GrantedLease fourth = LeaseNow(w1, 1).leases(0);
  ASSERT_EQ(fourth.job().id(), job);
  EXPECT_EQ((*store_->ListAttempts(job))[3].resumed_from_epoch(), 0);
  ASSERT_TRUE(store_state(fourth, 1, "state-again").ok());
  ASSERT_TRUE(Complete(fourth).ok());
  EXPECT_TRUE(store_->GetJob(job)->resume_sha256().empty());
  EXPECT_EQ(store_->GetResumeState(job, nullptr).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ExpiredLeaseRequeuesAndFencesTheOldEpoch) {
  std::string s = Submit(SweepToml(1));
  std::string w1 = RegisterWorker(), w2 = RegisterWorker();
  auto old_lease = LeaseNow(w1, 1).leases(0);
  clock_.AdvanceMs(options_.lease_ttl_ms + 1);
  scheduler_->Tick();
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);
  auto new_lease = LeaseNow(w2, 1).leases(0);
  EXPECT_EQ(new_lease.epoch(), 2);
  EXPECT_NE(new_lease.lease_id(), old_lease.lease_id());
  // The old holder's late reports are rejected.
  auto late = Complete(old_lease);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), HasSubstr("stale"));
  EXPECT_EQ(Beat(w1, old_lease).verdicts(0).action(), v1::LOST);
  ASSERT_TRUE(Complete(new_lease).ok());
  auto attempts = *store_->ListAttempts(s + "-0");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_THAT(attempts[0].error(), HasSubstr("expired"));
  EXPECT_EQ(attempts[1].worker_id(), w2);
}

TEST_F(SchedulerTest, TooManyExpiriesFail) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  for (int i = 0; i <= options_.max_expiries; ++i) {
    ASSERT_EQ(LeaseNow(w, 1).leases_size(), 1) << i;
    clock_.AdvanceMs(options_.lease_ttl_ms + 1);
    scheduler_->Tick();
  }
  EXPECT_EQ(StateOf(s + "-0"), v1::FAILED);
}

TEST_F(SchedulerTest, RetriesThenFailedThenManualRetry) {
  std::string s = Submit(SweepToml(1, 0, /*retries=*/1));
  std::string w = RegisterWorker();
  ASSERT_TRUE(Fail(LeaseNow(w, 1).leases(0)).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);
  auto second = LeaseNow(w, 1).leases(0);
  ASSERT_TRUE(Fail(second).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::FAILED);
  EXPECT_EQ(store_->GetJob(s + "-0")->error(), "boom");
  EXPECT_TRUE(Fail(second).ok());  // repeated: harmless
  v1::RetryJobsRequest retry;
  retry.set_sweep_id(s);
  EXPECT_EQ(*scheduler_->RetryJobs(user_, retry), 1);
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);
  auto third = LeaseNow(w, 1).leases(0);
  EXPECT_EQ(third.job().attempt(), 3);
  EXPECT_EQ(store_->ListAttempts(s + "-0")->size(), 3u);
}

TEST_F(SchedulerTest, HandBackDoesNotUseARetry) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  ASSERT_TRUE(Fail(LeaseNow(w, 1).leases(0), /*hand_back=*/true).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);
  EXPECT_EQ(store_->GetJob(s + "-0")->failures(), 0);
}

TEST_F(SchedulerTest, CancelPendingAtOnceAndRunningOnNextHeartbeat) {
  std::string s = Submit(SweepToml(2));
  std::string w = RegisterWorker();
  auto lease = LeaseNow(w, 1).leases(0);
  Beat(w, lease);
  EXPECT_EQ(*scheduler_->CancelSweep(user_, s), 2);
  EXPECT_EQ(StateOf(s + "-1"), v1::CANCELLED);
  EXPECT_EQ(StateOf(s + "-0"), v1::RUNNING);
  EXPECT_EQ(Beat(w, lease).verdicts(0).action(), v1::CANCEL);
  EXPECT_EQ(StateOf(s + "-0"), v1::CANCELLED);
  EXPECT_EQ(Complete(lease).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*scheduler_->CancelSweep(user_, s), 0);
  EXPECT_EQ(scheduler_->CancelJob(user_, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, SubmitIsIdempotentByKey) {
  std::string a = Submit(SweepToml(3), "key");
  std::string b = Submit(SweepToml(3), "key");
  EXPECT_EQ(a, b);
  EXPECT_EQ(store_->ListJobs({})->size(), 3u);
  EXPECT_NE(Submit(SweepToml(3), "other"), a);
}

TEST_F(SchedulerTest, BadSweepIsInvalidArgumentAndStoresNothing) {
  v1::SubmitSweepRequest r;
  r.set_sweep_toml("model = \"jsc-nope\"\ndataset = \"jsc\"\n");
  r.set_source_name("x.toml");
  auto resp = scheduler_->SubmitSweep(user_, r);
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(resp.status().message()), HasSubstr("jsc-nope"));
  EXPECT_TRUE(store_->ListSweeps()->empty());
}

TEST_F(SchedulerTest, LongPollIsAnsweredByNewWorkOrAtItsDeadline) {
  std::string w = RegisterWorker();
  v1::LeaseRequest r;
  r.set_worker_id(w);
  r.set_max_jobs(1);
  r.set_wait_ms(10000);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  scheduler_->Lease(worker_, r,
                    [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
  EXPECT_FALSE(got.has_value());
  std::string s = Submit(SweepToml(1));
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ((*got)->leases_size(), 1);
  EXPECT_EQ((*got)->leases(0).job().id(), s + "-0");

  got.reset();
  scheduler_->Lease(worker_, r,
                    [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
  clock_.AdvanceMs(9999);
  scheduler_->Tick();
  EXPECT_FALSE(got.has_value());
  clock_.AdvanceMs(1);
  scheduler_->Tick();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ((*got)->leases_size(), 0);
}

TEST_F(SchedulerTest, RetriedLeaseRequestGetsTheSameLeases) {
  Submit(SweepToml(2));
  std::string w = RegisterWorker();
  auto a = LeaseNow(w, 1, "req-1");
  auto b = LeaseNow(w, 1, "req-1");
  ASSERT_EQ(a.leases_size(), 1);
  ASSERT_EQ(b.leases_size(), 1);
  EXPECT_EQ(a.leases(0).lease_id(), b.leases(0).lease_id());
  EXPECT_EQ(LeaseNow(w, 5, "req-2").leases_size(), 1);  // only one job was left
}

TEST_F(SchedulerTest, RetriedRegisterIsTheSameWorker) {
  v1::RegisterRequest r;
  r.set_request_id("reg-1");
  r.set_device("cpu");
  r.set_slots(1);
  std::string a = scheduler_->Register(worker_, r)->worker_id();
  EXPECT_EQ(scheduler_->Register(worker_, r)->worker_id(), a);
  r.set_request_id("reg-2");
  EXPECT_NE(scheduler_->Register(worker_, r)->worker_id(), a);
  EXPECT_EQ(scheduler_->Workers().size(), 2u);
}

TEST_F(SchedulerTest, UnregisteredWorkerIsNotFound) {
  v1::LeaseRequest r;
  r.set_worker_id("w-ghost");
  r.set_max_jobs(1);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  scheduler_->Lease(worker_, r,
                    [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kNotFound);
  v1::HeartbeatRequest h;
  h.set_worker_id("w-ghost");
  EXPECT_EQ(scheduler_->Heartbeat(worker_, h).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, RecoveryKeepsLeasesForOneTtlThenRequeues) {
  std::string s = Submit(SweepToml(3));
  std::string w = RegisterWorker();
  auto leases = LeaseNow(w, 2);
  Beat(w, leases.leases(0));
  ASSERT_TRUE(Complete(leases.leases(1)).ok());
  clock_.AdvanceMs(options_.lease_ttl_ms * 5);  // the server was down a long time
  Restart();
  // The worker is still known, and may renew its lease after the restart.
  EXPECT_EQ(Beat(w, leases.leases(0)).verdicts(0).action(), v1::CONTINUE);
  EXPECT_EQ(StateOf(s + "-1"), v1::SUCCEEDED);
  auto pending = LeaseNow(w, 5);
  ASSERT_EQ(pending.leases_size(), 1);
  EXPECT_EQ(pending.leases(0).job().id(), s + "-2");
  // Without renewals after the restart the leases expire and the jobs requeue.
  clock_.AdvanceMs(options_.lease_ttl_ms + 1);
  scheduler_->Tick();
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);
  EXPECT_EQ(StateOf(s + "-2"), v1::PENDING);
}

constexpr char kPasses[] = R"(
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.report_graph]
)";

TEST_F(SchedulerTest, TransformWaitsForItsTrainJobsBestCheckpoint) {
  std::string s = Submit(SweepToml(2) + kPasses);
  EXPECT_EQ(store_->GetSweep(s)->num_jobs(), 4);
  const v1::Job* t = scheduler_->FindJob(s + "-2");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), v1::TRANSFORM);
  EXPECT_EQ(t->depends_on(), s + "-0");
  EXPECT_TRUE(t->transform_toml().empty());  // stored once, as the sweep's source_toml
  std::string w = RegisterWorker();
  auto trains = LeaseNow(w, 10);  // only the two TRAIN jobs are leasable
  ASSERT_EQ(trains.leases_size(), 2);
  EXPECT_EQ(trains.leases(0).job().kind(), v1::TRAIN);
  v1::CompleteRequest done;
  done.set_lease_id(trains.leases(0).lease_id());
  done.set_epoch(1);
  const std::string best = Upload(trains.leases(0), "best", "best weights");
  done.set_best_checkpoint_sha256(best);
  auto* report = done.add_reports();
  report->set_pass_name("train_summary");
  report->set_text("ok");
  ASSERT_TRUE(scheduler_->Complete(worker_, done).ok());
  EXPECT_EQ(store_->GetReport(s + "-0", "train_summary")->text(), "ok");
  auto transform = LeaseNow(w, 10);
  ASSERT_EQ(transform.leases_size(), 1);
  EXPECT_EQ(transform.leases(0).job().id(), s + "-2");
  EXPECT_EQ(transform.leases(0).job().input_checkpoint_sha256(), best);
  // The worker gets the passes and the trial's full config.
  EXPECT_THAT(transform.leases(0).job().transform_toml(), HasSubstr("[passes.quantize]"));
  EXPECT_THAT(transform.leases(0).job().config_json(), HasSubstr("\"model\":\"jsc-tiny\""));
}

TEST_F(SchedulerTest, FailedTrainCancelsItsTransformUntilRetried) {
  std::string s = Submit(SweepToml(1) + kPasses);
  std::string w = RegisterWorker();
  ASSERT_TRUE(Fail(LeaseNow(w, 10).leases(0)).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::FAILED);
  EXPECT_EQ(StateOf(s + "-1"), v1::CANCELLED);
  EXPECT_THAT(store_->GetJob(s + "-1")->error(), HasSubstr("FAILED"));
  v1::RetryJobsRequest retry;
  retry.set_sweep_id(s);
  EXPECT_EQ(*scheduler_->RetryJobs(user_, retry), 2);
  EXPECT_EQ(StateOf(s + "-1"), v1::PENDING);
  auto again = LeaseNow(w, 10);
  ASSERT_EQ(again.leases_size(), 1);            // the transform still waits for its input
  ASSERT_TRUE(Complete(again.leases(0)).ok());  // succeeded but without a checkpoint
  EXPECT_EQ(StateOf(s + "-1"), v1::CANCELLED);
  EXPECT_THAT(store_->GetJob(s + "-1")->error(), HasSubstr("no best checkpoint"));
}

TEST_F(SchedulerTest, SubmitTransformOnATrainJob) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  v1::SubmitTransformRequest req;
  req.set_request_id("r1");
  req.set_from_job_id(s + "-0");
  req.set_config_toml(kPasses);
  auto t = scheduler_->SubmitTransform(user_, req);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->job().depends_on(), s + "-0");
  EXPECT_EQ(scheduler_->SubmitTransform(user_, req)->job().id(),
            t->job().id());  // same request id
  auto train = LeaseNow(w, 5);
  ASSERT_EQ(train.leases_size(), 1);  // the transform waits
  v1::CompleteRequest done;
  done.set_lease_id(train.leases(0).lease_id());
  done.set_epoch(1);
  done.set_best_checkpoint_sha256(Upload(train.leases(0), "best", "weights b"));
  ASSERT_TRUE(scheduler_->Complete(worker_, done).ok());
  auto transform = LeaseNow(w, 5);
  ASSERT_EQ(transform.leases_size(), 1);
  EXPECT_EQ(transform.leases(0).job().id(), t->job().id());
  req.set_request_id("r2");
  req.set_from_job_id(t->job().id());
  EXPECT_EQ(scheduler_->SubmitTransform(user_, req).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.set_from_job_id("nope");
  EXPECT_EQ(scheduler_->SubmitTransform(user_, req).status().code(), absl::StatusCode::kNotFound);
  req.set_from_job_id(s + "-0");
  req.set_config_toml("[passes.quantise]\n");
  auto bad = scheduler_->SubmitTransform(user_, req);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("quantise"));
}

// --- identity: owners, worker tokens, lease secrets, artifacts ---

TEST_F(SchedulerTest, AnotherUsersSweepIsAnsweredLikeAMissingOne) {
  std::string s = Submit(SweepToml(2));
  EXPECT_EQ(store_->GetSweep(s)->owner(), "alice");
  const Caller bob{"tok-bob", v1::ROLE_USER, "bob"};
  auto cancel = scheduler_->CancelSweep(bob, s);
  EXPECT_EQ(cancel.status().code(), absl::StatusCode::kNotFound);
  // The same words as for an id that does not exist.
  EXPECT_EQ(cancel.status().message(), absl::StrCat("no sweep '", s, "'"));
  EXPECT_EQ(scheduler_->CancelSweep(bob, "sw-missing").status().message(), "no sweep 'sw-missing'");
  EXPECT_EQ(scheduler_->CancelJob(bob, s + "-0").status().code(), absl::StatusCode::kNotFound);
  v1::RetryJobsRequest retry;
  retry.set_sweep_id(s);
  EXPECT_EQ(scheduler_->RetryJobs(bob, retry).status().code(), absl::StatusCode::kNotFound);
  retry.clear_sweep_id();
  retry.add_job_ids(s + "-1");
  EXPECT_EQ(scheduler_->RetryJobs(bob, retry).status().code(), absl::StatusCode::kNotFound);
  v1::SubmitTransformRequest t;
  t.set_from_job_id(s + "-0");
  t.set_config_toml(kPasses);
  EXPECT_EQ(scheduler_->SubmitTransform(bob, t).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StateOf(s + "-0"), v1::PENDING);  // nothing changed
  // An admin may act on every sweep.
  const Caller admin{"tok-admin", v1::ROLE_ADMIN, "admin"};
  EXPECT_EQ(*scheduler_->CancelJob(admin, s + "-0"), 1);
  EXPECT_EQ(StateOf(s + "-0"), v1::CANCELLED);
}

TEST_F(SchedulerTest, IdempotencyKeysArePerOwner) {
  std::string a = Submit(SweepToml(1), "same-key");
  v1::SubmitSweepRequest r;
  r.set_sweep_toml(SweepToml(1));
  r.set_idempotency_key("same-key");
  auto bob = scheduler_->SubmitSweep(Caller{"tok-bob", v1::ROLE_USER, "bob"}, r);
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_FALSE(bob->existing());  // bob never learns alice's sweep
  EXPECT_NE(bob->sweep().id(), a);
  EXPECT_EQ(bob->sweep().owner(), "bob");
  EXPECT_EQ(Submit(SweepToml(1), "same-key"), a);  // alice's retry finds hers
}

TEST_F(SchedulerTest, LeasesAreUsableOnlyByTheWorkerTokenThatHoldsThem) {
  Submit(SweepToml(1));
  std::string w = RegisterWorker();
  const Caller other{"tok-other", v1::ROLE_WORKER, "pool"};
  v1::LeaseRequest lr;
  lr.set_worker_id(w);
  lr.set_max_jobs(1);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  scheduler_->Lease(other, lr, [&](absl::StatusOr<v1::LeaseResponse> r) { got = std::move(r); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kPermissionDenied);
  auto lease = LeaseNow(w, 1).leases(0);
  v1::HeartbeatRequest h;
  h.set_worker_id(w);
  EXPECT_EQ(scheduler_->Heartbeat(other, h).status().code(), absl::StatusCode::kPermissionDenied);
  v1::CompleteRequest done;
  done.set_lease_id(lease.lease_id());
  done.set_epoch(lease.epoch());
  EXPECT_EQ(scheduler_->Complete(other, done).code(), absl::StatusCode::kPermissionDenied);
  v1::FailRequest fail;
  fail.set_lease_id(lease.lease_id());
  fail.set_epoch(lease.epoch());
  EXPECT_EQ(scheduler_->Fail(other, fail).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(scheduler_->CheckUpload(other, lease.lease_id(), lease.epoch(), lease.job().id())
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StateOf(lease.job().id()),
            v1::LEASED);  // none of it changed the job
  // A second worker of the same token cannot renew the first one's lease.
  std::string w2 = RegisterWorker();
  EXPECT_EQ(Beat(w2, lease).verdicts(0).action(), v1::LOST);
  EXPECT_EQ(Beat(w, lease).verdicts(0).action(), v1::CONTINUE);
}

TEST_F(SchedulerTest, LeaseIdsAreSecretsThatCannotBeGuessed) {
  std::string s = Submit(SweepToml(2));
  std::string w = RegisterWorker();
  auto leases = LeaseNow(w, 2);
  ASSERT_EQ(leases.leases_size(), 2);
  const std::string& id = leases.leases(0).lease_id();
  EXPECT_THAT(id, ::testing::StartsWith(s + "-0#1#"));
  EXPECT_EQ(id.size(), (s + "-0#1#").size() + 32);
  EXPECT_NE(id.substr(id.size() - 32), leases.leases(1).lease_id().substr(id.size() - 32));
  // The old, predictable form "<job>#<epoch>" no longer works.
  v1::CompleteRequest forged;
  forged.set_lease_id(s + "-0#1");
  forged.set_epoch(1);
  auto st = scheduler_->Complete(worker_, forged);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()),
              ::testing::Not(HasSubstr("#")));  // never echoed
  EXPECT_EQ(StateOf(s + "-0"), v1::LEASED);
}

TEST_F(SchedulerTest, UploadsBelongToTheCurrentLeaseAndCompleteRecordsTheirHashes) {
  std::string s = Submit(SweepToml(2));
  std::string w = RegisterWorker();
  auto leases = LeaseNow(w, 2);
  const auto& a = leases.leases(0);
  const auto& b = leases.leases(1);
  // Another job's lease, or a stale epoch, cannot upload for job a.
  EXPECT_EQ(scheduler_->CheckUpload(worker_, b.lease_id(), b.epoch(), a.job().id()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      scheduler_->CheckUpload(worker_, a.lease_id(), a.epoch() + 1, a.job().id()).status().code(),
      absl::StatusCode::kFailedPrecondition);
  // Complete must name what this attempt uploaded.
  v1::CompleteRequest done;
  done.set_lease_id(a.lease_id());
  done.set_epoch(a.epoch());
  done.set_best_checkpoint_sha256(Sha256Hex("never uploaded"));
  auto st = scheduler_->Complete(worker_, done);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("best_checkpoint_sha256"));
  const std::string best = Upload(a, "best", "best weights");
  const std::string sd = Upload(a, "best_state_dict", "state dict");
  done.set_best_checkpoint_sha256(best);
  ASSERT_TRUE(scheduler_->Complete(worker_, done).ok());
  auto job = store_->GetJob(a.job().id());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->artifact_sha256().at("best"), best);
  EXPECT_EQ(job->artifact_sha256().at("best_state_dict"), sd);
  // Once the job succeeded, nobody can replace its artifacts.
  EXPECT_EQ(scheduler_->CheckUpload(worker_, a.lease_id(), a.epoch(), a.job().id()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, AStaleAttemptsUploadIsNotLinkedToTheNewAttempt) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  auto first = LeaseNow(w, 1).leases(0);
  Upload(first, "best", "old weights");
  clock_.AdvanceMs(options_.lease_ttl_ms + 1);
  scheduler_->Tick();  // the first lease expires
  auto second = LeaseNow(w, 1).leases(0);
  EXPECT_EQ(second.epoch(), first.epoch() + 1);
  EXPECT_EQ(
      scheduler_->CheckUpload(worker_, first.lease_id(), first.epoch(), s + "-0").status().code(),
      absl::StatusCode::kFailedPrecondition);
  v1::CompleteRequest done;
  done.set_lease_id(second.lease_id());
  done.set_epoch(second.epoch());
  done.set_best_checkpoint_sha256(Sha256Hex("old weights"));  // attempt 1's upload
  EXPECT_EQ(scheduler_->Complete(worker_, done).code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobStateTest, TransitionRejectsIllegalMoves) {
  EXPECT_TRUE(Transition(v1::PENDING, v1::LEASED).ok());
  EXPECT_TRUE(Transition(v1::RUNNING, v1::PENDING).ok());
  EXPECT_TRUE(Transition(v1::FAILED, v1::PENDING).ok());
  auto bad = Transition(v1::SUCCEEDED, v1::PENDING);
  EXPECT_EQ(bad.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("SUCCEEDED -> PENDING"));
  EXPECT_FALSE(Transition(v1::PENDING, v1::RUNNING).ok());
  EXPECT_FALSE(Transition(v1::PENDING, v1::SUCCEEDED).ok());
  EXPECT_FALSE(Transition(v1::CANCELLED, v1::RUNNING).ok());
  EXPECT_FALSE(Transition(v1::JOB_STATE_UNSPECIFIED, v1::PENDING).ok());
}

// Delegates to another store; job writes fail once `job_writes_left` is 0.
class FlakyStore final : public testing::ForwardingStore {
 public:
  explicit FlakyStore(std::unique_ptr<Store> inner) : ForwardingStore(std::move(inner)) {}
  int job_writes_left = 1 << 30;
  bool fail_metrics = false;

  absl::Status UpdateJob(const v1::Job& job) override {
    if (!Write()) return absl::UnavailableError("disk gone");
    return ForwardingStore::UpdateJob(job);
  }
  absl::Status UpdateJobAndAttempt(const v1::Job& job, const v1::Attempt& a) override {
    if (!Write()) return absl::UnavailableError("disk gone");
    return ForwardingStore::UpdateJobAndAttempt(job, a);
  }
  absl::Status UpdateJobs(const std::vector<JobUpdate>& jobs, const v1::Attempt* a) override {
    if (!Write()) return absl::UnavailableError("disk gone");
    return ForwardingStore::UpdateJobs(jobs, a);
  }
  absl::Status AppendMetrics(const std::string& id, int32_t a,
                             const std::vector<v1::Metric>& m) override {
    if (fail_metrics) return absl::ResourceExhaustedError("the database is full");
    return ForwardingStore::AppendMetrics(id, a, m);
  }

 private:
  bool Write() { return job_writes_left-- > 0; }
};

TEST_F(SchedulerTest, TheCompleteThatEndsATrainJobResolvesItsTransformInTheSameWrite) {
  auto flaky_owned = std::make_unique<FlakyStore>(std::move(store_));
  FlakyStore* flaky = flaky_owned.get();
  store_ = std::move(flaky_owned);
  Restart();
  std::string s = Submit(SweepToml(1) + kPasses);
  std::string w = RegisterWorker();
  auto train = LeaseNow(w, 10);
  ASSERT_EQ(train.leases_size(), 1);
  v1::CompleteRequest done;
  done.set_lease_id(train.leases(0).lease_id());
  done.set_epoch(train.leases(0).epoch());
  done.set_best_checkpoint_sha256(Upload(train.leases(0), "best", "weights"));
  flaky->job_writes_left = 1;  // the store fails every write after the next one
  ASSERT_TRUE(scheduler_->Complete(worker_, done).ok());
  EXPECT_EQ(StateOf(s + "-0"), v1::SUCCEEDED);
  EXPECT_EQ(store_->GetJob(s + "-1")->input_checkpoint_sha256(), done.best_checkpoint_sha256());
  // A failed write changes nothing, in the store or in memory.
  v1::LeaseRequest r;
  r.set_worker_id(w);
  r.set_max_jobs(10);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  scheduler_->Lease(worker_, r, [&](absl::StatusOr<v1::LeaseResponse> resp) { got = resp; });
  ASSERT_TRUE(got.has_value());
  EXPECT_THAT(got->status().message(), HasSubstr("disk gone"));  // the grant's write failed
  EXPECT_EQ(StateOf(s + "-1"), v1::PENDING);
  EXPECT_EQ(scheduler_->FindJob(s + "-1")->state(), v1::PENDING);
}

TEST_F(SchedulerTest, RecoveryResolvesADependentLeftBlockedByAnOlderServer) {
  std::string s = Submit(SweepToml(2) + kPasses);
  std::string w = RegisterWorker();
  auto trains = LeaseNow(w, 10);
  ASSERT_EQ(trains.leases_size(), 2);
  v1::CompleteRequest done;
  done.set_lease_id(trains.leases(0).lease_id());
  done.set_epoch(trains.leases(0).epoch());
  done.set_best_checkpoint_sha256(Upload(trains.leases(0), "best", "weights"));
  ASSERT_TRUE(scheduler_->Complete(worker_, done).ok());
  ASSERT_TRUE(Fail(trains.leases(1)).ok());
  // As a crash between the two writes of an older server left them: ended
  // train jobs, their transforms PENDING without input.
  for (const std::string id : {s + "-2", s + "-3"}) {
    v1::Job blocked = *store_->GetJob(id);
    blocked.set_state(v1::PENDING);
    blocked.clear_input_checkpoint_sha256();
    blocked.clear_error();
    ASSERT_TRUE(store_->UpdateJob(blocked).ok());
  }
  Restart();
  EXPECT_EQ(store_->GetJob(s + "-2")->input_checkpoint_sha256(), done.best_checkpoint_sha256());
  EXPECT_EQ(StateOf(s + "-3"), v1::CANCELLED);
  auto transform = LeaseNow(w, 10);
  ASSERT_EQ(transform.leases_size(), 1);
  EXPECT_EQ(transform.leases(0).job().id(), s + "-2");
}

TEST_F(SchedulerTest, RetryFailedResetsTransformsInSweepsOfTenOrMoreTrials) {
  std::string s = Submit(SweepToml(12) + kPasses);  // trains -0..-11, transforms -12..-23
  std::string w = RegisterWorker();
  auto trains = LeaseNow(w, 100);
  ASSERT_EQ(trains.leases_size(), 12);
  for (const auto& lease : trains.leases()) ASSERT_TRUE(Fail(lease).ok());
  for (int i = 12; i < 24; ++i) ASSERT_EQ(StateOf(absl::StrCat(s, "-", i)), v1::CANCELLED);
  v1::RetryJobsRequest retry;
  retry.set_sweep_id(s);
  EXPECT_EQ(*scheduler_->RetryJobs(user_, retry), 24);
  for (int i = 0; i < 24; ++i)
    EXPECT_EQ(StateOf(absl::StrCat(s, "-", i)), v1::PENDING) << "job " << i;
  // Named jobs in any order: the same.
  auto again = LeaseNow(w, 100);
  ASSERT_EQ(again.leases_size(), 12);
  for (const auto& lease : again.leases()) ASSERT_TRUE(Fail(lease).ok());
  v1::RetryJobsRequest named;
  for (int i : {23, 2, 14, 11, 1, 13, 9, 21}) named.add_job_ids(absl::StrCat(s, "-", i));
  EXPECT_EQ(*scheduler_->RetryJobs(user_, named), 8);
  for (int i : {1, 2, 9, 11, 13, 14, 21, 23})
    EXPECT_EQ(StateOf(absl::StrCat(s, "-", i)), v1::PENDING) << "job " << i;
}

TEST_F(SchedulerTest, ARetriedTransformWhoseTrainStaysFailedIsNotLeftBlocked) {
  std::string s = Submit(SweepToml(1) + kPasses);
  std::string w = RegisterWorker();
  ASSERT_TRUE(Fail(LeaseNow(w, 10).leases(0)).ok());
  v1::RetryJobsRequest retry;
  retry.add_job_ids(s + "-1");
  retry.set_include_cancelled(true);
  EXPECT_EQ(*scheduler_->RetryJobs(user_, retry), 1);
  EXPECT_EQ(StateOf(s + "-1"), v1::CANCELLED);  // at once: its input will never come
}

TEST_F(SchedulerTest, AWallClockStepNeitherExpiresNorExtendsLeases) {
  Submit(SweepToml(1));
  std::string w = RegisterWorker();
  auto lease = LeaseNow(w, 1).leases(0);
  clock_.StepWallMs(options_.lease_ttl_ms * 100);  // the clock jumps forward
  scheduler_->Tick();
  EXPECT_EQ(StateOf(lease.job().id()), v1::LEASED);
  EXPECT_EQ(Beat(w, lease).verdicts(0).action(), v1::CONTINUE);
  clock_.StepWallMs(-options_.lease_ttl_ms * 200);  // and far back
  clock_.AdvanceMs(options_.lease_ttl_ms + 1);      // one TTL passes without renewal
  scheduler_->Tick();
  EXPECT_EQ(StateOf(lease.job().id()), v1::PENDING);
  EXPECT_EQ(Beat(w, lease).verdicts(0).action(), v1::LOST);
}

TEST_F(SchedulerTest, AHungJobIsFailedAtItsTimeLimitAndRetriedPerTheSweep) {
  std::string toml = SweepToml(1, 0, /*retries=*/1);
  toml.replace(toml.find("[sweep]\n"), 8, "[sweep]\ntimeout = 60\n");
  std::string s = Submit(toml);
  EXPECT_EQ(store_->GetSweep(s)->timeout_ms(), 60000);
  std::string w = RegisterWorker();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto lease = LeaseNow(w, 1);
    ASSERT_EQ(lease.leases_size(), 1) << "attempt " << attempt;
    for (int t = 0; t < 5; ++t) {  // heartbeats keep coming: the job hangs, its worker lives
      clock_.AdvanceMs(11000);
      ASSERT_EQ(Beat(w, lease.leases(0)).verdicts(0).action(), v1::CONTINUE);
      scheduler_->Tick();
      ASSERT_EQ(StateOf(s + "-0"), v1::RUNNING);
    }
    clock_.AdvanceMs(6000);  // 61 s after the grant
    scheduler_->Tick();
    EXPECT_THAT(store_->GetJob(s + "-0")->error(),
                HasSubstr("ran longer than its time limit of 60 s"));
    EXPECT_EQ(Beat(w, lease.leases(0)).verdicts(0).action(), v1::LOST);
  }
  EXPECT_EQ(StateOf(s + "-0"), v1::FAILED);  // 1 + retries attempts
  EXPECT_EQ(store_->ListAttempts(s + "-0")->size(), 2u);
}

TEST_F(SchedulerTest, JobsWithoutATimeoutGetTheDefaultOfTheirKind) {
  options_.train_timeout_ms = 1000 * 1000;
  options_.lease_ttl_ms = 1000 * 1000 * 1000;
  Restart();
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  LeaseNow(w, 1);
  clock_.AdvanceMs(999 * 1000);
  scheduler_->Tick();
  EXPECT_EQ(StateOf(s + "-0"), v1::LEASED);
  clock_.AdvanceMs(2 * 1000);
  scheduler_->Tick();
  EXPECT_EQ(StateOf(s + "-0"), v1::FAILED);
  EXPECT_THAT(store_->GetJob(s + "-0")->error(), HasSubstr("by default"));
}

TEST_F(SchedulerTest, ASecondSchedulerWithAStaleViewCannotOverwriteJobs) {
  std::string s = Submit(SweepToml(1));
  Scheduler other(*store_, clock_, options_);  // e.g. a second server on the same database
  ASSERT_TRUE(other.Recover().ok());
  std::string w = RegisterWorker();
  ASSERT_EQ(LeaseNow(w, 1).leases_size(), 1);
  v1::LeaseRequest r;
  r.set_worker_id(w);
  r.set_max_jobs(1);
  std::optional<absl::StatusOr<v1::LeaseResponse>> got;
  other.Lease(worker_, r, [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
  ASSERT_TRUE(got.has_value());
  // `other` has not seen the registration: NOT_FOUND. Register there too, then
  // its grant of the same job must be refused by the store.
  v1::RegisterRequest reg;
  reg.set_name("test");
  reg.set_slots(1);
  auto w2 = other.Register(worker_, reg);
  ASSERT_TRUE(w2.ok());
  r.set_worker_id(w2->worker_id());
  got.reset();
  other.Lease(worker_, r, [&](absl::StatusOr<v1::LeaseResponse> resp) { got = std::move(resp); });
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got->status().message(), HasSubstr("another qsweep-server"));
  EXPECT_EQ(store_->GetJob(s + "-0")->lease_epoch(), 1);
}

TEST_F(SchedulerTest, AHeartbeatTheStoreCannotWriteIsAnsweredNotStored) {
  auto flaky_owned = std::make_unique<FlakyStore>(std::move(store_));
  FlakyStore* flaky = flaky_owned.get();
  store_ = std::move(flaky_owned);
  Restart();
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  auto lease = LeaseNow(w, 1).leases(0);
  v1::Metric m;
  m.set_name("train_loss_step");
  m.set_step(1);
  flaky->fail_metrics = true;
  auto refused = Beat(w, lease, {m});
  EXPECT_EQ(refused.verdicts(0).action(), v1::NOT_STORED);
  EXPECT_THAT(refused.verdicts(0).error(), HasSubstr("the database is full"));
  EXPECT_EQ(StateOf(s + "-0"), v1::LEASED);  // not renewed either
  flaky->fail_metrics = false;
  flaky->job_writes_left = 0;  // metrics are stored, the renewal is not
  EXPECT_EQ(Beat(w, lease, {m}).verdicts(0).action(), v1::NOT_STORED);
  flaky->job_writes_left = 1 << 30;
  EXPECT_EQ(Beat(w, lease, {m}).verdicts(0).action(), v1::CONTINUE);
  EXPECT_EQ(store_->ListMetrics(s + "-0", 1, "")->size(), 1u);
  EXPECT_EQ(StateOf(s + "-0"), v1::RUNNING);
}

TEST_F(SchedulerTest, MetricsOfAHeartbeatOvertakenByTheCompleteAreStored) {
  std::string s = Submit(SweepToml(1));
  std::string w = RegisterWorker();
  auto lease = LeaseNow(w, 1).leases(0);
  ASSERT_TRUE(Complete(lease).ok());
  v1::Metric m;
  m.set_name("train_loss_step");
  m.set_step(7);
  EXPECT_EQ(Beat(w, lease, {m}).verdicts(0).action(), v1::LOST);  // the job is over
  auto stored = store_->ListMetrics(s + "-0", 1, "");
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].step(), 7);
}

}  // namespace
}  // namespace qsweep
