// The two gRPC services over an in-process channel, with a fake clock and
// the scheduler's periodic tick turned off: tests move time themselves.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "storage/sqlite_store.h"
#include "tests/test_util/in_process_server.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

constexpr char kSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
[sweep]
name = "svc"
[sweep.grid]
learning_rate = [1e-3, 1e-2, 1e-1]
)";

class ServiceTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override { StartServer(NewInMemoryStore()); }

  std::string Submit(const std::string& key = "") { return SubmitToml(kSweep, key); }
  std::string Register() { return RegisterWorker(/*slots=*/2); }

  grpc::Status Complete(const v1::GrantedLease& lease, double acc, const std::string& best = "") {
    grpc::ClientContext ctx;
    v1::CompleteRequest req;
    req.set_lease_id(lease.lease_id());
    req.set_epoch(lease.epoch());
    (*req.mutable_final_metrics())["test_acc_epoch"] = acc;
    req.set_best_checkpoint_sha256(best);
    v1::CompleteResponse resp;
    return workers_->Complete(&ctx, req, &resp);
  }

  v1::SweepSummary GetSweep(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetSweepRequest req;
    req.set_sweep_id(id);
    v1::SweepSummary resp;
    EXPECT_TRUE(experiments_->GetSweep(&ctx, req, &resp).ok());
    return resp;
  }
};

TEST_F(ServiceTest, SubmitRunAndQuery) {
  std::string id = Submit();
  EXPECT_EQ(GetSweep(id).pending(), 3);
  std::string w = Register();
  auto leases = Lease(w, 3);
  ASSERT_EQ(leases.leases_size(), 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Complete(leases.leases(i), 0.1 * (i + 1)).ok());
  auto summary = GetSweep(id);
  EXPECT_EQ(summary.succeeded(), 3);
  EXPECT_EQ(summary.sweep().name(), "svc");

  grpc::ClientContext ctx;
  v1::ListJobsRequest req;
  req.set_sweep_id(id);
  req.set_sort_by("test_acc_epoch");
  req.set_descending(true);
  req.set_page_size(2);
  v1::ListJobsResponse page1;
  ASSERT_TRUE(experiments_->ListJobs(&ctx, req, &page1).ok());
  ASSERT_EQ(page1.jobs_size(), 2);
  EXPECT_EQ(page1.jobs(0).index(), 2);  // best accuracy first
  EXPECT_EQ(page1.jobs(1).index(), 1);
  ASSERT_EQ(page1.next_page_token(), "2");
  grpc::ClientContext ctx2;
  req.set_page_token(page1.next_page_token());
  v1::ListJobsResponse page2;
  ASSERT_TRUE(experiments_->ListJobs(&ctx2, req, &page2).ok());
  ASSERT_EQ(page2.jobs_size(), 1);
  EXPECT_EQ(page2.jobs(0).index(), 0);
  EXPECT_TRUE(page2.next_page_token().empty());

  grpc::ClientContext ctx3;
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(experiments_->ListWorkers(&ctx3, v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).id(), w);
}

// CompleteRequest.lease_next: a Complete leases the worker's next job in the
// same call (one round trip less per job), once the result is stored.
TEST_F(ServiceTest, CompleteCanLeaseTheNextJob) {
  const std::string id = Submit();
  const std::string w = Register();
  auto leases = Lease(w, 1);
  ASSERT_EQ(leases.leases_size(), 1);
  v1::GrantedLease lease = leases.leases(0);
  std::set<int> done;
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    v1::CompleteRequest req;
    req.set_lease_id(lease.lease_id());
    req.set_epoch(lease.epoch());
    (*req.mutable_final_metrics())["test_acc_epoch"] = 0.5;
    req.mutable_lease_next()->set_worker_id(w);
    req.mutable_lease_next()->set_max_jobs(1);
    req.mutable_lease_next()->set_wait_ms(60000);  // ignored: answered at once
    v1::CompleteResponse resp;
    ASSERT_TRUE(workers_->Complete(&ctx, req, &resp).ok());
    done.insert(lease.job().index());
    if (i < 2) {
      ASSERT_EQ(resp.next().leases_size(), 1) << i;
      lease = resp.next().leases(0);
      EXPECT_EQ(lease.job().state(), v1::LEASED);
      EXPECT_FALSE(lease.job().config_json().empty());  // a full job, as Lease grants
    } else {
      EXPECT_EQ(resp.next().leases_size(), 0);  // nothing left; no long-poll
    }
  }
  EXPECT_EQ(done, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(GetSweep(id).succeeded(), 3);

  // A malformed lease_next is refused by name, and nothing is stored.
  const std::string id2 = Submit("again");
  auto more = Lease(w, 1);
  ASSERT_EQ(more.leases_size(), 1);
  grpc::ClientContext ctx;
  v1::CompleteRequest req;
  req.set_lease_id(more.leases(0).lease_id());
  req.set_epoch(more.leases(0).epoch());
  req.mutable_lease_next()->set_worker_id(w);
  req.mutable_lease_next()->set_max_jobs(0);
  v1::CompleteResponse resp;
  grpc::Status s = workers_->Complete(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lease_next: "));
  EXPECT_THAT(s.error_message(), HasSubstr("max_jobs"));
  EXPECT_EQ(GetSweep(id2).succeeded(), 0);
}

TEST_F(ServiceTest, IdempotentSubmitOverTheWire) {
  std::string a = Submit("same"), b = Submit("same");
  EXPECT_EQ(a, b);
  grpc::ClientContext ctx;
  v1::ListSweepsResponse sweeps;
  ASSERT_TRUE(experiments_->ListSweeps(&ctx, v1::ListSweepsRequest(), &sweeps).ok());
  EXPECT_EQ(sweeps.sweeps_size(), 1);
}

TEST_F(ServiceTest, ArtifactsUploadVerifyAndDownload) {
  std::string id = Submit();
  std::string w = Register();
  auto lease = Lease(w, 1).leases(0);
  const std::string content(3 << 20, 'x');  // several chunks
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
    chunk.set_data(content.substr(0, 1 << 20));
    ASSERT_TRUE(writer->Write(chunk));
    chunk.Clear();
    chunk.set_data(content.substr(1 << 20));
    ASSERT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.info().size_bytes(), static_cast<int64_t>(content.size()));
  }
  {  // a wrong hash is refused
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
    chunk.set_data("other");
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("info.sha256"));
  }
  ASSERT_TRUE(Complete(lease, 0.5, sha).ok());
  grpc::ClientContext ctx;
  v1::DownloadArtifactRequest req;
  req.set_job_id(lease.job().id());
  req.set_name("best");
  auto reader = experiments_->DownloadArtifact(&ctx, req);
  v1::ArtifactChunk chunk;
  std::string got;
  int chunks = 0;
  while (reader->Read(&chunk)) {
    if (chunks++ == 0) {
      EXPECT_EQ(chunk.info().sha256(), sha);
    }
    got += chunk.data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, content);
  EXPECT_EQ(chunks, 3);

  grpc::ClientContext jctx;
  v1::GetJobRequest jreq;
  jreq.set_job_id(lease.job().id());
  v1::GetJobResponse job;
  ASSERT_TRUE(experiments_->GetJob(&jctx, jreq, &job).ok());
  EXPECT_EQ(job.job().best_checkpoint_sha256(), sha);
  ASSERT_EQ(job.attempts_size(), 1);
  ASSERT_EQ(job.artifacts_size(), 1);
  EXPECT_EQ(job.artifacts(0).name(), "best");
}

TEST_F(ServiceTest, ExpiryCancelAndMetricsThroughTheServices) {
  std::string id = Submit();
  std::string w = Register();
  auto leases = Lease(w, 2);
  ASSERT_EQ(leases.leases_size(), 2);
  {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_worker_id(w);
    auto* u = req.add_updates();
    u->set_lease_id(leases.leases(0).lease_id());
    u->set_epoch(leases.leases(0).epoch());
    auto* m = u->add_metrics();
    m->set_name("train_loss_step");
    m->set_step(3);
    m->set_value(0.25);
    v1::HeartbeatResponse resp;
    ASSERT_TRUE(workers_->Heartbeat(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.verdicts(0).action(), v1::CONTINUE);
  }
  {
    grpc::ClientContext ctx;
    v1::GetMetricsRequest req;
    req.set_job_id(leases.leases(0).job().id());
    v1::GetMetricsResponse resp;
    ASSERT_TRUE(experiments_->GetMetrics(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.metrics_size(), 1);
    EXPECT_DOUBLE_EQ(resp.metrics(0).value(), 0.25);
  }
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_job_id(leases.leases(1).job().id());
    v1::CancelResponse resp;
    ASSERT_TRUE(experiments_->CancelJob(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.cancelled(), 1);
  }
  clock_.AdvanceMs(SchedulerOptions().lease_ttl_ms + 1);
  server_->coordinator().RunSync([](Scheduler& s) { s.Tick(); });
  auto summary = GetSweep(id);
  EXPECT_EQ(summary.pending(), 2);    // job 0 expired and was requeued, job 2 waits
  EXPECT_EQ(summary.cancelled(), 1);  // job 1 was asked to stop and its lease lapsed
}

TEST_F(ServiceTest, LongPollIsAnsweredWhenWorkArrives) {
  std::string w = Register();
  grpc::ClientContext ctx;
  v1::LeaseRequest req;
  req.set_worker_id(w);
  req.set_max_jobs(1);
  req.set_wait_ms(60000);
  v1::LeaseResponse resp;
  std::promise<grpc::Status> done;
  workers_->async()->Lease(&ctx, &req, &resp, [&](grpc::Status s) { done.set_value(s); });
  std::string id = Submit();
  auto fut = done.get_future();
  ASSERT_TRUE(fut.get().ok());
  ASSERT_EQ(resp.leases_size(), 1);
  EXPECT_EQ(resp.leases(0).job().sweep_id(), id);
}

TEST_F(ServiceTest, WatchStreamsUntilTheSweepFinishes) {
  std::string id = Submit();
  std::string w = Register();
  grpc::ClientContext ctx;
  v1::WatchSweepRequest req;
  req.set_sweep_id(id);
  auto reader = experiments_->WatchSweep(&ctx, req);
  v1::WatchSweepEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.summary().pending(), 3);
  EXPECT_EQ(event.jobs_size(), 3);
  auto leases = Lease(w, 3);
  for (const auto& l : leases.leases()) ASSERT_TRUE(Complete(l, 0.5).ok());
  int last_succeeded = 0;
  while (reader->Read(&event)) last_succeeded = event.summary().succeeded();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last_succeeded, 3);
}

TEST_F(ServiceTest, AFullDatabaseRefusesNewWorkClearlyAndKeepsServingReads) {
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("qsweep_full_", getpid(), ".db"))
          .string();
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
  server_.reset();
  StartServer(*OpenSqliteStore(SqliteStoreOptions(path)));
  std::string id = Submit();
  server_.reset();  // closing checkpoints the WAL into the file
  SqliteStoreOptions full(path);
  full.max_page_count = static_cast<int64_t>(std::filesystem::file_size(path) / 4096);
  StartServer(*OpenSqliteStore(full));
  // New work is refused with an error that says why.
  grpc::ClientContext ctx;
  v1::SubmitSweepRequest req;
  req.set_sweep_toml(std::string(kSweep) + "# " + std::string(200000, 'x') + "\n");
  v1::SubmitSweepResponse resp;
  grpc::Status s = experiments_->SubmitSweep(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("the database is full"));
  // Reads go on.
  EXPECT_EQ(GetSweep(id).pending(), 3);
  server_.reset();
  for (const char* ext : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(path + ext);
}

TEST_F(ServiceTest, RecoversFromSqliteAfterRestart) {
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("qsweep_service_", getpid(), ".db"))
          .string();
  std::filesystem::remove(path);
  server_.reset();
  StartServer(*OpenSqliteStore(SqliteStoreOptions(path)));
  std::string id = Submit("k");
  std::string w = Register();
  auto lease = Lease(w, 1).leases(0);
  server_.reset();  // the server stops; the worker keeps its job
  StartServer(*OpenSqliteStore(SqliteStoreOptions(path)));
  EXPECT_EQ(Submit("k"), id);
  auto summary = GetSweep(id);
  EXPECT_EQ(summary.leased(), 1);
  EXPECT_EQ(summary.pending(), 2);
  ASSERT_TRUE(Complete(lease, 0.9).ok());  // the old lease is still honoured
  EXPECT_EQ(GetSweep(id).succeeded(), 1);
  server_.reset();
  std::filesystem::remove(path);
}

// Every RPC rejects malformed requests with INVALID_ARGUMENT naming the field.
TEST_F(ServiceTest, MalformedRequestsNameTheField) {
  auto expect_bad = [](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(s.error_message(), HasSubstr("'" + field + "'"));
  };
  auto E = [&](auto method, auto req, auto resp, const std::string& field) {
    grpc::ClientContext ctx;
    expect_bad(((*experiments_).*method)(&ctx, req, &resp), field);
  };
  auto W = [&](auto method, auto req, auto resp, const std::string& field) {
    grpc::ClientContext ctx;
    expect_bad(((*workers_).*method)(&ctx, req, &resp), field);
  };
  using X = v1::Experiments::Stub;
  using Y = v1::Workers::Stub;
  E(&X::SubmitSweep, v1::SubmitSweepRequest(), v1::SubmitSweepResponse(), "sweep_toml");
  E(&X::GetSweep, v1::GetSweepRequest(), v1::SweepSummary(), "sweep_id");
  v1::ListSweepsRequest ls;
  ls.set_limit(-1);
  E(&X::ListSweeps, ls, v1::ListSweepsResponse(), "limit");
  E(&X::ListJobs, v1::ListJobsRequest(), v1::ListJobsResponse(), "sweep_id");
  v1::ListJobsRequest lj;
  lj.set_sweep_id("s");
  lj.set_sort_by("acc; drop");
  E(&X::ListJobs, lj, v1::ListJobsResponse(), "sort_by");
  lj.set_sort_by("");
  lj.set_state(static_cast<v1::JobState>(42));
  E(&X::ListJobs, lj, v1::ListJobsResponse(), "state");
  E(&X::GetJob, v1::GetJobRequest(), v1::GetJobResponse(), "job_id");
  E(&X::CancelSweep, v1::CancelSweepRequest(), v1::CancelResponse(), "sweep_id");
  E(&X::CancelJob, v1::CancelJobRequest(), v1::CancelResponse(), "job_id");
  E(&X::RetryJobs, v1::RetryJobsRequest(), v1::RetryJobsResponse(), "sweep_id");
  E(&X::GetMetrics, v1::GetMetricsRequest(), v1::GetMetricsResponse(), "job_id");
  v1::SubmitTransformRequest st;
  st.set_from_job_id("j");
  E(&X::SubmitTransform, st, v1::SubmitTransformResponse(), "config_toml");
  v1::GetReportRequest gr;
  gr.set_job_id("j");
  E(&X::GetReport, gr, v1::Report(), "pass_name");
  v1::SubmitSweepRequest big;
  big.set_sweep_toml("model = \"jsc-toy\"\n");
  big.set_idempotency_key(std::string(300, 'k'));
  E(&X::SubmitSweep, big, v1::SubmitSweepResponse(), "idempotency_key");

  v1::RegisterRequest reg;
  reg.set_device("tpu");
  reg.set_slots(1);
  W(&Y::Register, reg, v1::RegisterResponse(), "device");
  reg.set_device("cuda:0");
  reg.set_slots(0);
  W(&Y::Register, reg, v1::RegisterResponse(), "slots");
  v1::LeaseRequest lease;
  lease.set_max_jobs(1);
  W(&Y::Lease, lease, v1::LeaseResponse(), "worker_id");
  lease.set_worker_id("w");
  lease.set_max_jobs(0);
  W(&Y::Lease, lease, v1::LeaseResponse(), "max_jobs");
  v1::HeartbeatRequest hb;
  hb.set_worker_id("w");
  hb.add_updates()->set_lease_id("x#1");
  W(&Y::Heartbeat, hb, v1::HeartbeatResponse(), "updates[0].epoch");
  W(&Y::Complete, v1::CompleteRequest(), v1::CompleteResponse(), "lease_id");
  v1::CompleteRequest cr;
  cr.set_lease_id("x#1");
  cr.set_epoch(1);
  cr.set_best_checkpoint_sha256("zz");
  W(&Y::Complete, cr, v1::CompleteResponse(), "best_checkpoint_sha256");
  v1::FailRequest fr;
  fr.set_lease_id("x#1");
  W(&Y::Fail, fr, v1::FailResponse(), "epoch");

  // Streams.
  {
    grpc::ClientContext ctx;
    auto reader = experiments_->WatchSweep(&ctx, v1::WatchSweepRequest());
    v1::WatchSweepEvent e;
    EXPECT_FALSE(reader->Read(&e));
    expect_bad(reader->Finish(), "sweep_id");
  }
  {
    grpc::ClientContext ctx;
    v1::DownloadArtifactRequest req;
    req.set_sha256("abc");
    auto reader = experiments_->DownloadArtifact(&ctx, req);
    v1::ArtifactChunk c;
    EXPECT_FALSE(reader->Read(&c));
    expect_bad(reader->Finish(), "sha256");
  }
  {
    grpc::ClientContext ctx;
    v1::FetchArtifactRequest req;
    auto reader = workers_->FetchArtifact(&ctx, req);
    v1::ArtifactChunk c;
    EXPECT_FALSE(reader->Read(&c));
    expect_bad(reader->Finish(), "sha256");
  }
  {
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = workers_->UploadArtifact(&ctx, &resp);
    v1::ArtifactChunk c;
    c.set_data("x");
    writer->Write(c);
    writer->WritesDone();
    expect_bad(writer->Finish(), "info.sha256");
  }
  // Well-formed but unknown ids are NOT_FOUND, not INVALID_ARGUMENT.
  grpc::ClientContext ctx;
  v1::GetSweepRequest gs;
  gs.set_sweep_id("sw-none");
  v1::SweepSummary summary;
  EXPECT_EQ(experiments_->GetSweep(&ctx, gs, &summary).error_code(), grpc::StatusCode::NOT_FOUND);
  // A bad sweep file is INVALID_ARGUMENT naming the key.
  grpc::ClientContext sctx;
  v1::SubmitSweepRequest sreq;
  sreq.set_sweep_toml("model = \"jsc-toy\"\ndataset = \"jsc\"\nbatch_size = \"big\"\n");
  v1::SubmitSweepResponse sresp;
  grpc::Status s = experiments_->SubmitSweep(&sctx, sreq, &sresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("batch_size"));
}

}  // namespace
}  // namespace qsweep
