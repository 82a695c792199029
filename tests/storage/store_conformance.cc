#include "tests/storage/store_conformance.h"

#include <gmock/gmock.h>

#include "absl/strings/str_cat.h"

namespace qsweep {

v1::Sweep TestSweep(const std::string& id, const std::string& key) {
  v1::Sweep s;
  s.set_id(id);
  s.set_name("name-" + id);
  s.set_idempotency_key(key);
  s.set_priority(3);
  return s;
}

v1::Job TestJob(const std::string& sweep_id, int index, v1::JobState state) {
  v1::Job j;
  j.set_id(absl::StrCat(sweep_id, "-", index));
  j.set_sweep_id(sweep_id);
  j.set_index(index);
  j.set_state(state);
  j.set_kind(v1::TRAIN);
  j.set_config_json(absl::StrCat("{\"batch_size\":", 64 << index, "}"));
  return j;
}

namespace {

using ::testing::ElementsAre;

std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const auto& j : jobs) ids.push_back(j.id());
  return ids;
}

TEST_P(StoreConformanceTest, SweepAndJobsRoundTrip) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s1"), {TestJob("s1", 0), TestJob("s1", 1)}).ok());
  auto sweep = store_->GetSweep("s1");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->name(), "name-s1");
  EXPECT_EQ(sweep->priority(), 3);
  auto job = store_->GetJob("s1-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config_json(), "{\"batch_size\":128}");
  EXPECT_EQ(job->kind(), v1::TRAIN);
  EXPECT_EQ(store_->GetSweep("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ListJobsOrdersBySweepThenIndexAndFilters) {
  ASSERT_TRUE(
      store_->CreateSweep(TestSweep("b"), {TestJob("b", 1), TestJob("b", 0, v1::FAILED)}).ok());
  ASSERT_TRUE(store_->CreateSweep(TestSweep("a"), {TestJob("a", 0, v1::RUNNING)}).ok());
  auto all = store_->ListJobs({});
  ASSERT_TRUE(all.ok());
  // Sweep "b" was created first; within it, by index.
  EXPECT_THAT(Ids(*all), ElementsAre("b-0", "b-1", "a-0"));
  JobFilter sweep_a;
  sweep_a.sweep_id = "a";
  auto of_a = store_->ListJobs(sweep_a);
  EXPECT_THAT(Ids(*of_a), ElementsAre("a-0"));
  JobFilter active_states;
  active_states.states = {v1::PENDING, v1::RUNNING};
  auto active = store_->ListJobs(active_states);
  EXPECT_THAT(Ids(*active), ElementsAre("b-1", "a-0"));
  auto sweeps = store_->ListSweeps();
  ASSERT_TRUE(sweeps.ok());
  ASSERT_EQ(sweeps->size(), 2u);
  EXPECT_EQ((*sweeps)[0].id(), "b");
}

TEST_P(StoreConformanceTest, IdempotencyKeyIsUniqueAndNothingPartialIsStored) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s1", "key-1"), {TestJob("s1", 0)}).ok());
  auto second = store_->CreateSweep(TestSweep("s2", "key-1"), {TestJob("s2", 0)});
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetJob("s2-0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetSweep("s2").status().code(), absl::StatusCode::kNotFound);
  auto found = store_->FindSweepByIdempotencyKey("key-1");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id(), "s1");
  EXPECT_EQ(store_->FindSweepByIdempotencyKey("").status().code(), absl::StatusCode::kNotFound);
  // Empty keys never collide.
  EXPECT_TRUE(store_->CreateSweep(TestSweep("s3"), {}).ok());
  EXPECT_TRUE(store_->CreateSweep(TestSweep("s4"), {}).ok());
}

TEST_P(StoreConformanceTest, DuplicateJobIdRollsBackTheWholeSweep) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s1"), {TestJob("s1", 0)}).ok());
  v1::Job clash = TestJob("s1", 0);
  clash.set_sweep_id("s2");
  EXPECT_EQ(store_->CreateSweep(TestSweep("s2"), {TestJob("s2", 0), clash}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetSweep("s2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("s2-0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("s1-0")->sweep_id(), "s1");
}

TEST_P(StoreConformanceTest, UpdateJobAndAttempts) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s"), {TestJob("s", 0)}).ok());
  v1::Job j = *store_->GetJob("s-0");
  j.set_state(v1::LEASED);
  j.set_lease_epoch(7);
  v1::Attempt a;
  a.set_job_id(j.id());
  a.set_number(2);
  a.set_state(v1::LEASED);
  ASSERT_TRUE(store_->UpdateJobAndAttempt(j, a).ok());
  a.set_number(1);
  a.set_state(v1::FAILED);
  a.set_error("boom");
  ASSERT_TRUE(store_->UpdateJobAndAttempt(j, a).ok());
  a.set_number(2);
  a.set_state(v1::SUCCEEDED);
  ASSERT_TRUE(store_->UpdateJobAndAttempt(j, a).ok());  // upsert
  EXPECT_EQ(store_->GetJob("s-0")->lease_epoch(), 7);
  JobFilter leased;
  leased.states = {v1::LEASED};
  EXPECT_EQ(store_->ListJobs(leased)->size(), 1u);
  auto attempts = store_->ListAttempts("s-0");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].error(), "boom");
  EXPECT_EQ((*attempts)[1].state(), v1::SUCCEEDED);
  v1::Job ghost = TestJob("s", 9);
  EXPECT_EQ(store_->UpdateJob(ghost).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->UpdateJobAndAttempt(ghost, a).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListAttempts("s-9")->empty());
}

v1::Metric M(const std::string& name, int64_t step, double value) {
  v1::Metric m;
  m.set_name(name);
  m.set_step(step);
  m.set_epoch(step / 10);
  m.set_value(value);
  return m;
}

TEST_P(StoreConformanceTest, UpdateJobsIsAllOrNothingAndConditional) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s"), {TestJob("s", 0), TestJob("s", 1)}).ok());
  v1::Job a = TestJob("s", 0, v1::LEASED);
  a.set_lease_epoch(1);
  v1::Job b = TestJob("s", 1, v1::CANCELLED);
  v1::Attempt attempt;
  attempt.set_job_id("s-0");
  attempt.set_number(1);
  attempt.set_state(v1::LEASED);
  // The second job is not where the writer believes it is: nothing is written.
  auto stale = store_->UpdateJobs({{a, 0, v1::PENDING}, {b, 3, v1::PENDING}}, &attempt);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_THAT(std::string(stale.message()), ::testing::HasSubstr("job 's-1'"));
  EXPECT_EQ(store_->GetJob("s-0")->state(), v1::PENDING);
  EXPECT_TRUE(store_->ListAttempts("s-0")->empty());
  EXPECT_EQ(store_->UpdateJobs({{TestJob("s", 7), 0, v1::PENDING}}, nullptr).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->UpdateJobs({{a, 0, v1::PENDING}, {b, 0, v1::PENDING}}, &attempt).ok());
  EXPECT_EQ(store_->GetJob("s-0")->state(), v1::LEASED);
  EXPECT_EQ(store_->GetJob("s-1")->state(), v1::CANCELLED);
  EXPECT_EQ(store_->ListAttempts("s-0")->size(), 1u);
  // Repeating the write with the old expectation is refused.
  EXPECT_EQ(store_->UpdateJobs({{a, 0, v1::PENDING}}, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(StoreConformanceTest, MetricsAreIdempotentPerAttempt) {
  ASSERT_TRUE(
      store_->AppendMetrics("j", 1, {M("loss", 20, 0.5), M("loss", 10, 0.9), M("acc", 10, 0.3)})
          .ok());
  // A resent batch replaces, never duplicates.
  ASSERT_TRUE(store_->AppendMetrics("j", 1, {M("loss", 20, 0.4)}).ok());
  ASSERT_TRUE(store_->AppendMetrics("j", 2, {M("loss", 10, 7.0)}).ok());
  auto all = store_->ListMetrics("j", 1, "");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name(), "acc");
  EXPECT_EQ((*all)[1].step(), 10);
  EXPECT_DOUBLE_EQ((*all)[2].value(), 0.4);
  EXPECT_EQ((*all)[2].epoch(), 2);
  auto loss2 = store_->ListMetrics("j", 2, "loss");
  ASSERT_EQ(loss2->size(), 1u);
  EXPECT_DOUBLE_EQ((*loss2)[0].value(), 7.0);
  EXPECT_TRUE(store_->ListMetrics("j", 1, "nope")->empty());
}

TEST_P(StoreConformanceTest, ArtifactsAreContentAddressed) {
  v1::ArtifactInfo best;
  best.set_sha256("aa");
  best.set_kind("checkpoint");
  best.set_size_bytes(3);
  best.set_job_id("j");
  best.set_name("best");
  ASSERT_TRUE(store_->PutArtifact(best, std::string("a\0b", 3)).ok());
  v1::ArtifactInfo last = best;
  last.set_name("last");
  ASSERT_TRUE(store_->PutArtifact(last, std::string("a\0b", 3)).ok());
  v1::ArtifactInfo dataset;
  dataset.set_sha256("dd");
  dataset.set_kind("dataset");
  ASSERT_TRUE(store_->PutArtifact(dataset, "data").ok());
  EXPECT_EQ(*store_->GetArtifactBytes("aa"), std::string("a\0b", 3));
  EXPECT_EQ(*store_->GetArtifactBytes("dd"), "data");
  EXPECT_EQ(store_->GetArtifactBytes("zz").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->FindArtifact("j", "last")->sha256(), "aa");
  EXPECT_EQ(store_->FindArtifact("j", "first").status().code(), absl::StatusCode::kNotFound);
  auto list = store_->ListArtifacts("j");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name(), "best");
  // Relinking a name points it at new content.
  last.set_sha256("bb");
  ASSERT_TRUE(store_->PutArtifact(last, "new").ok());
  EXPECT_EQ(store_->FindArtifact("j", "last")->sha256(), "bb");
}

TEST_P(StoreConformanceTest, ReportsAndWorkersUpsert) {
  v1::Report r;
  r.set_job_id("j");
  r.set_pass_name("report_graph");
  r.set_json("{}");
  r.set_text("t1");
  ASSERT_TRUE(store_->PutReport(r).ok());
  r.set_text("t2");
  ASSERT_TRUE(store_->PutReport(r).ok());
  EXPECT_EQ(store_->GetReport("j", "report_graph")->text(), "t2");
  EXPECT_EQ(store_->GetReport("j", "other").status().code(), absl::StatusCode::kNotFound);

  v1::WorkerInfo w1, w2;
  w1.set_id("w1");
  w1.set_slots(2);
  w2.set_id("w2");
  ASSERT_TRUE(store_->PutWorker(w1).ok());
  ASSERT_TRUE(store_->PutWorker(w2).ok());
  w1.set_slots(4);
  ASSERT_TRUE(store_->PutWorker(w1).ok());
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].id(), "w1");
  EXPECT_EQ((*workers)[0].slots(), 4);
}

TEST_P(StoreConformanceTest, TokensCreateListRevoke) {
  v1::Token a, b;
  a.set_id("aaaaaaaaaaaa");
  a.set_sha256("hash-a");
  a.set_role(v1::ROLE_ADMIN);
  a.set_owner("admin");
  b.set_id("bbbbbbbbbbbb");
  b.set_role(v1::ROLE_USER);
  b.set_owner("alice");
  ASSERT_TRUE(store_->CreateToken(a).ok());
  ASSERT_TRUE(store_->CreateToken(b).ok());
  a.set_owner("mallory");
  EXPECT_EQ(store_->CreateToken(a).code(), absl::StatusCode::kAlreadyExists);
  auto got = store_->GetToken("aaaaaaaaaaaa");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->owner(), "admin");  // the duplicate changed nothing
  EXPECT_EQ(got->sha256(), "hash-a");
  EXPECT_EQ(store_->GetToken("nope").status().code(), absl::StatusCode::kNotFound);

  auto revoked = store_->RevokeToken("bbbbbbbbbbbb", 1234);
  ASSERT_TRUE(revoked.ok());
  EXPECT_TRUE(*revoked);
  revoked = store_->RevokeToken("bbbbbbbbbbbb", 9999);
  ASSERT_TRUE(revoked.ok());
  EXPECT_FALSE(*revoked);  // already revoked: the first time stays
  EXPECT_EQ(store_->GetToken("bbbbbbbbbbbb")->revoked_unix_ms(), 1234);
  EXPECT_EQ(store_->RevokeToken("nope", 1).status().code(), absl::StatusCode::kNotFound);

  auto all = store_->ListTokens();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id(), "aaaaaaaaaaaa");
  EXPECT_EQ((*all)[1].role(), v1::ROLE_USER);
}

// Resume states (issue 9 §1): one per job; each put replaces the previous
// one (nothing accumulates); delete removes it; artifacts are untouched.
TEST_P(StoreConformanceTest, ResumeStateIsOnePerJobAndReplaced) {
  ASSERT_TRUE(store_->CreateSweep(TestSweep("s1"), {TestJob("s1", 0), TestJob("s1", 1)}).ok());
  EXPECT_EQ(store_->GetResumeState("s1-0", nullptr).status().code(), absl::StatusCode::kNotFound);
  v1::ArtifactInfo info;
  info.set_job_id("s1-0");
  info.set_kind("resume");
  info.set_name("resume");
  info.set_sha256("aa");
  info.set_epochs_done(1);
  ASSERT_TRUE(store_->PutResumeState(info, "state after epoch 1").ok());
  info.set_sha256("bb");
  info.set_epochs_done(2);
  ASSERT_TRUE(store_->PutResumeState(info, "state after epoch 2").ok());
  v1::ArtifactInfo got;
  auto bytes = store_->GetResumeState("s1-0", &got);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "state after epoch 2");
  EXPECT_EQ(got.sha256(), "bb");
  EXPECT_EQ(got.epochs_done(), 2);
  EXPECT_EQ(store_->GetResumeState("s1-1", nullptr).status().code(), absl::StatusCode::kNotFound);
  // Not an artifact: neither linked to the job nor fetchable by hash.
  auto linked = store_->ListArtifacts("s1-0");
  ASSERT_TRUE(linked.ok());
  EXPECT_TRUE(linked->empty());
  EXPECT_EQ(store_->GetArtifactBytes("bb").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->DeleteResumeState("s1-0").ok());
  EXPECT_EQ(store_->GetResumeState("s1-0", nullptr).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->DeleteResumeState("s1-0").ok());
}

}  // namespace
}  // namespace qsweep
