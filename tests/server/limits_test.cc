// Limits of the service (common/limits.h): a small request stays small. An
// in-process server with a fake clock; the CLI tests use a loopback port.
#include "common/limits.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/service_cli.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "storage/sqlite_store.h"
#include "tests/test_util/test_tokens.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

// A sweep of `trials` trials (seed = 0..trials-1) with `base` as extra base keys.
std::string SeedSweep(int trials, const std::string& base = "") {
  std::string seeds;
  for (int i = 0; i < trials; ++i) absl::StrAppend(&seeds, i ? "," : "", i);
  return absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n", base,
                      "\n[sweep]\nname = \"big\"\n[sweep.grid]\nseed = [", seeds, "]\n");
}

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(NewInMemoryStore()); }
  void TearDown() override {
    server_.reset();
    if (!db_path_.empty()) {
      for (const char* ext : {"", "-wal", "-shm"}) fs::remove(db_path_ + ext);
    }
  }

  void StartServer(std::unique_ptr<Store> store, const std::string& listen = "") {
    server_.reset();
    ServerOptions options;
    options.listen = listen;
    options.coordinator.tick_interval_ms = 0;
    tokens_ = testing::AddTestTokens(*store);
    auto server = Server::Start(options, std::move(store), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    experiments_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    workers_ = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker));
  }

  void StartSqlite() {
    db_path_ =
        (fs::temp_directory_path() / absl::StrCat("qsweep_limits_", getpid(), ".db")).string();
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(db_path_ + ext);
    auto store = OpenSqliteStore(SqliteStoreOptions(db_path_));
    ASSERT_TRUE(store.ok()) << store.status();
    StartServer(std::move(*store));
  }

  grpc::Status TrySubmit(const std::string& toml, v1::SubmitSweepResponse* resp) {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    return experiments_->SubmitSweep(&ctx, req, resp);
  }

  std::string Submit(const std::string& toml) {
    v1::SubmitSweepResponse resp;
    grpc::Status s = TrySubmit(toml, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  grpc::Status TryRegister(const std::string& name, const std::string& request_id,
                           std::string* id = nullptr, v1::Workers::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    v1::RegisterRequest req;
    req.set_name(name);
    req.set_request_id(request_id);
    req.set_device("cpu");
    req.set_slots(1);
    v1::RegisterResponse resp;
    grpc::Status s = (stub ? stub : workers_.get())->Register(&ctx, req, &resp);
    if (id) *id = resp.worker_id();
    return s;
  }

  std::string Register(const std::string& name = "w", const std::string& request_id = "") {
    std::string id;
    grpc::Status s = TryRegister(name, request_id, &id);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return id;
  }

  v1::LeaseResponse Lease(const std::string& worker, int n) {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker_id(worker);
    req.set_max_jobs(n);
    v1::LeaseResponse resp;
    grpc::Status s = workers_->Lease(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  grpc::Status ListJobs(const v1::ListJobsRequest& req, v1::ListJobsResponse* resp) {
    grpc::ClientContext ctx;
    return experiments_->ListJobs(&ctx, req, resp);
  }

  std::vector<v1::WorkerInfo> Workers() {
    grpc::ClientContext ctx;
    v1::ListWorkersResponse resp;
    EXPECT_TRUE(experiments_->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
    return {resp.workers().begin(), resp.workers().end()};
  }

  void Tick() {
    server_->coordinator().RunSync([](Scheduler& s) { s.Tick(); });
  }

  FakeClock clock_;
  std::string db_path_;
  testing::TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<v1::Workers::Stub> workers_;
};

// INVALID_ARGUMENT naming the field, the limit and the value.
void ExpectLimit(const grpc::Status& s, const std::string& field, int64_t limit, int64_t value) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr(field), HasSubstr(absl::StrCat(limit)),
                                       HasSubstr(absl::StrCat(value))));
}

// ---- the base config is stored once per sweep ---------------------------------------------

// A 1,000-trial sweep with one long string: the database stays small (the base
// config is stored once, each job only its trial), ListJobs answers, and the
// worker still receives the trial's effective config.
TEST_F(LimitsTest, LongBaseStringIsStoredOncePerSweep) {
  StartSqlite();
  const std::string long_value(4000, 'x');
  const std::string toml = SeedSweep(1000, absl::StrCat("target = \"", long_value, "\""));
  ASSERT_LT(toml.size(), 12000u);
  const std::string id = Submit(toml);
  ASSERT_FALSE(id.empty());
  const int64_t bytes = FileSize(db_path_) + FileSize(db_path_ + "-wal");
  RecordProperty("database_bytes", std::to_string(bytes));  // see --gtest_output=xml
  // Today every job carried the whole effective config: over 5 MB here.
  EXPECT_LT(bytes, 1500000) << "database and WAL hold " << bytes << " bytes";

  v1::ListJobsRequest req;
  req.set_sweep_id(id);
  v1::ListJobsResponse page;
  grpc::Status s = ListJobs(req, &page);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(page.jobs_size(), 1000);
  EXPECT_EQ(page.jobs(7).trial_json(), "{\"seed\":7}");

  // The worker gets base + trial.
  auto leases = Lease(Register(), 2);
  ASSERT_EQ(leases.leases_size(), 2);
  const auto& job = leases.leases(1).job();
  EXPECT_THAT(job.config_json(), HasSubstr(long_value));
  EXPECT_THAT(job.config_json(), HasSubstr("\"seed\":1"));
  EXPECT_THAT(job.config_json(), HasSubstr("\"model\":\"jsc-tiny\""));
  // So does GetJob (`qsweep show`).
  grpc::ClientContext ctx;
  v1::GetJobRequest get;
  get.set_job_id(id + "-999");
  v1::GetJobResponse got;
  ASSERT_TRUE(experiments_->GetJob(&ctx, get, &got).ok());
  EXPECT_THAT(got.job().config_json(), HasSubstr("\"seed\":999"));
  EXPECT_THAT(got.job().config_json(), HasSubstr(long_value));
}

// Sweeps stored before base configs: their jobs carry config_json and
// transform_toml themselves, and are leased and shown as they are.
TEST_F(LimitsTest, JobsStoredWithTheirWholeConfigStillWork) {
  v1::Sweep sweep;
  sweep.set_id("sw-old");
  sweep.set_source_toml("model = \"jsc-tiny\"\n");
  sweep.set_num_jobs(1);
  v1::Job job;
  job.set_id("sw-old-0");
  job.set_sweep_id("sw-old");
  job.set_kind(v1::TRAIN);
  job.set_state(v1::PENDING);
  job.set_max_attempts(1);
  const std::string config = R"({"dataset":"jsc-synthetic","model":"jsc-tiny","seed":4})";
  job.set_config_json(config);
  job.set_trial_json(R"({"seed":4})");
  auto store = NewInMemoryStore();
  ASSERT_TRUE(store->CreateSweep(sweep, {job}).ok());
  StartServer(std::move(store));
  auto leases = Lease(Register(), 1);
  ASSERT_EQ(leases.leases_size(), 1);
  EXPECT_EQ(leases.leases(0).job().config_json(), config);
  grpc::ClientContext ctx;
  v1::GetJobRequest get;
  get.set_job_id("sw-old-0");
  v1::GetJobResponse got;
  // Sweeps from before owners have none: only admins see them.
  auto admin = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.admin));
  ASSERT_TRUE(admin->GetJob(&ctx, get, &got).ok());
  EXPECT_EQ(got.job().config_json(), config);
  grpc::ClientContext user_ctx;
  EXPECT_EQ(experiments_->GetJob(&user_ctx, get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

// ---- request size ------------------------------------------------------------------------

TEST_F(LimitsTest, RequestLargerThanTheLimitIsRefusedByTheTransport) {
  Submit(SeedSweep(1));
  auto lease = Lease(Register(), 1).leases(0);
  grpc::ClientContext ctx;
  v1::CompleteRequest req;
  req.set_lease_id(lease.lease_id());
  req.set_epoch(lease.epoch());
  req.set_result_json(std::string(kMaxRequestBytes + 1000, ' '));
  v1::CompleteResponse resp;
  grpc::Status s = workers_->Complete(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat(kMaxRequestBytes)));
}

TEST_F(LimitsTest, SweepFileSizeErrorNamesTheLimitAndTheSize) {
  v1::SubmitSweepResponse resp;
  const std::string toml = "# " + std::string(kMaxSweepTomlBytes, 'c') + "\nmodel = \"jsc-tiny\"\n";
  ExpectLimit(TrySubmit(toml, &resp), "sweep_toml", kMaxSweepTomlBytes, toml.size());
}

// ---- sweep contents ----------------------------------------------------------------------

TEST_F(LimitsTest, TrialCountErrorNamesTheLimitAndTheCount) {
  std::string a, b;
  for (int i = 0; i < 101; ++i)
    absl::StrAppend(&a, i ? "," : "", i), absl::StrAppend(&b, i ? "," : "", i + 1);
  const std::string toml =
      absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n[sweep.grid]\nseed = [", a,
                   "]\nbatch_size = [", b, "]\n");
  v1::SubmitSweepResponse resp;
  ExpectLimit(TrySubmit(toml, &resp), "[sweep]", kMaxTrialsPerSweep, 101 * 101);
}

TEST_F(LimitsTest, TrainKeysOfASweepAreBounded) {
  struct Case {
    std::string key;
    int64_t limit, value;
  };
  for (const Case& c : std::vector<Case>{{"synthetic_rows", kMaxSyntheticRows, 1000000000},
                                         {"threads", kMaxThreads, 100000},
                                         {"max_epochs", kMaxEpochs, 1000000},
                                         {"batch_size", kMaxBatchSize, 100000000}}) {
    SCOPED_TRACE(c.key);
    v1::SubmitSweepResponse resp;
    // In the base config, and as a swept value.
    ExpectLimit(TrySubmit(SeedSweep(2, absl::StrCat(c.key, " = ", c.value)), &resp), c.key, c.limit,
                c.value);
    const std::string swept =
        absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n[sweep.grid]\n", c.key,
                     " = [1, ", c.value, "]\n");
    ExpectLimit(TrySubmit(swept, &resp), c.key, c.limit, c.value);
  }
  // At the limit is fine.
  Submit(SeedSweep(1, absl::StrCat("threads = ", kMaxThreads)));
}

// A stand-alone transform config may set train keys too: the same bounds.
TEST_F(LimitsTest, TrainKeysOfATransformConfigAreBounded) {
  const std::string id = Submit(SeedSweep(1));
  grpc::ClientContext ctx;
  v1::SubmitTransformRequest req;
  req.set_from_job_id(id + "-0");
  req.set_config_toml("threads = 100000\n[passes.report_graph]\n");
  v1::SubmitTransformResponse resp;
  ExpectLimit(experiments_->SubmitTransform(&ctx, req, &resp), "threads", kMaxThreads, 100000);
}

TEST_F(LimitsTest, StringsOfASweepAreBounded) {
  v1::SubmitSweepResponse resp;
  const size_t n = kMaxConfigStringBytes + 1;
  ExpectLimit(
      TrySubmit(SeedSweep(1, absl::StrCat("target = \"", std::string(n, 'y'), "\"")), &resp),
      "target", kMaxConfigStringBytes, n);
  const std::string name(kMaxIdBytes + 5, 'n');
  const std::string toml = absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n",
                                        "[sweep]\nname = \"", name, "\"\n");
  ExpectLimit(TrySubmit(toml, &resp), "sweep.name", kMaxIdBytes, name.size());
  grpc::ClientContext ctx;
  v1::SubmitSweepRequest req;
  req.set_sweep_toml(SeedSweep(1));
  req.set_request_id(std::string(300, 'r'));
  ExpectLimit(experiments_->SubmitSweep(&ctx, req, &resp), "request_id", kMaxIdBytes, 300);
}

// Long swept strings would be stored with every trial: their total is bounded.
TEST_F(LimitsTest, SweptValuesOfASweepAreBounded) {
  std::string targets, seeds;
  for (int i = 0; i < 5; ++i)
    absl::StrAppend(&targets, i ? "," : "", "\"", std::string(4000, 'a' + i), "\"");
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&seeds, i ? "," : "", i);
  const std::string toml =
      absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n[sweep.grid]\ntarget = [",
                   targets, "]\nseed = [", seeds, "]\n");
  ASSERT_LT(toml.size(), 40000u);
  v1::SubmitSweepResponse resp;
  grpc::Status s = TrySubmit(toml, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("swept values"), HasSubstr(absl::StrCat(kMaxTrialBytesPerSweep))));
}

// ---- what workers report -----------------------------------------------------------------

TEST_F(LimitsTest, ReportsPerHeartbeatAndCompleteAreBounded) {
  Submit(SeedSweep(1));
  const std::string w = Register();
  auto lease = Lease(w, 1).leases(0);
  {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest req;
    req.set_worker_id(w);
    auto* u = req.add_updates();
    u->set_lease_id(lease.lease_id());
    u->set_epoch(lease.epoch());
    for (int i = 0; i <= kMaxMetricsPerRequest; ++i) {
      auto* m = u->add_metrics();
      m->set_name("train_loss_step");
      m->set_step(i);
    }
    v1::HeartbeatResponse resp;
    ExpectLimit(workers_->Heartbeat(&ctx, req, &resp), "metrics", kMaxMetricsPerRequest,
                kMaxMetricsPerRequest + 1);
  }
  auto complete = [&](const std::function<void(v1::CompleteRequest&)>& fill) {
    grpc::ClientContext ctx;
    v1::CompleteRequest req;
    req.set_lease_id(lease.lease_id());
    req.set_epoch(lease.epoch());
    fill(req);
    v1::CompleteResponse resp;
    return workers_->Complete(&ctx, req, &resp);
  };
  ExpectLimit(complete([](v1::CompleteRequest& r) {
                r.set_result_json(std::string(kMaxResultJsonBytes + 1, ' '));
              }),
              "result_json", kMaxResultJsonBytes, kMaxResultJsonBytes + 1);
  ExpectLimit(complete([](v1::CompleteRequest& r) {
                for (int i = 0; i <= kMaxFinalMetrics; ++i)
                  (*r.mutable_final_metrics())[absl::StrCat("m", i)] = i;
              }),
              "final_metrics", kMaxFinalMetrics, kMaxFinalMetrics + 1);
  ExpectLimit(complete([](v1::CompleteRequest& r) {
                for (int i = 0; i <= kMaxReportsPerComplete; ++i)
                  r.add_reports()->set_pass_name(absl::StrCat("p", i));
              }),
              "reports", kMaxReportsPerComplete, kMaxReportsPerComplete + 1);
  ExpectLimit(complete([](v1::CompleteRequest& r) {
                auto* rep = r.add_reports();
                rep->set_pass_name("p");
                rep->set_text(std::string(kMaxReportBytes + 1, 't'));
              }),
              "reports[0]", kMaxReportBytes, kMaxReportBytes + 1);
  {
    grpc::ClientContext ctx;
    v1::FailRequest req;
    req.set_lease_id(lease.lease_id());
    req.set_epoch(lease.epoch());
    req.set_error(std::string(kMaxErrorBytes + 1, 'e'));
    v1::FailResponse resp;
    ExpectLimit(workers_->Fail(&ctx, req, &resp), "error", kMaxErrorBytes, kMaxErrorBytes + 1);
  }
  {
    grpc::ClientContext ctx;
    v1::RetryJobsRequest req;
    for (int i = 0; i <= kMaxRetryJobIds; ++i) req.add_job_ids("j");
    v1::RetryJobsResponse resp;
    ExpectLimit(experiments_->RetryJobs(&ctx, req, &resp), "job_ids", kMaxRetryJobIds,
                kMaxRetryJobIds + 1);
  }
  // Nothing above changed the job.
  grpc::ClientContext ctx;
  v1::GetJobRequest get;
  get.set_job_id(lease.job().id());
  v1::GetJobResponse got;
  ASSERT_TRUE(experiments_->GetJob(&ctx, get, &got).ok());
  EXPECT_EQ(got.job().state(), v1::LEASED);
}

// ---- artifacts ---------------------------------------------------------------------------

TEST_F(LimitsTest, ConcurrentUploadsAreBounded) {
  const std::string content = "weights";
  Submit(SeedSweep(1));
  const v1::GrantedLease lease = Lease(Register(), 1).leases(0);
  auto first_chunk = [&] {
    v1::ArtifactChunk chunk;
    chunk.mutable_info()->set_sha256(Sha256Hex(content));
    chunk.mutable_info()->set_kind("checkpoint");
    chunk.mutable_info()->set_job_id(lease.job().id());
    chunk.mutable_info()->set_name("best");
    chunk.set_lease_id(lease.lease_id());
    chunk.set_lease_epoch(lease.epoch());
    chunk.set_data(content);
    return chunk;
  };
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::UploadArtifactResponse> responses(kMaxConcurrentUploads + 1);
  std::vector<std::unique_ptr<grpc::ClientWriter<v1::ArtifactChunk>>> writers;
  for (int i = 0; i < kMaxConcurrentUploads; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    writers.push_back(workers_->UploadArtifact(contexts.back().get(), &responses[i]));
    writers.back()->Write(first_chunk());
  }
  // Wait for the explicit state "the server holds the 16 uploads" (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (server_->uploads_in_progress() < kMaxConcurrentUploads &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  ASSERT_EQ(server_->uploads_in_progress(), kMaxConcurrentUploads);
  {  // one more is refused at once
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = workers_->UploadArtifact(&ctx, &resp);
    writer->Write(first_chunk());
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat(kMaxConcurrentUploads)));
  }
  for (auto& w : writers) {
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  // Finished uploads free their places.
  grpc::ClientContext ctx;
  v1::UploadArtifactResponse resp;
  auto writer = workers_->UploadArtifact(&ctx, &resp);
  writer->Write(first_chunk());
  writer->WritesDone();
  EXPECT_TRUE(writer->Finish().ok());
}

// ---- paging ------------------------------------------------------------------------------

TEST_F(LimitsTest, ListJobsPagesAreBoundedAndCoverEveryJob) {
  const std::string id = Submit(SeedSweep(10000));
  v1::ListJobsRequest req;
  req.set_sweep_id(id);
  req.set_page_size(100000);  // lowered to the server's maximum
  std::set<int> seen;
  int pages = 0;
  do {
    v1::ListJobsResponse page;
    grpc::Status s = ListJobs(req, &page);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LE(page.jobs_size(), kMaxJobsPerPage);
    EXPECT_LE(page.ByteSizeLong(), kMaxPageBytes + 4096);
    for (const auto& j : page.jobs()) {
      EXPECT_TRUE(j.config_json().empty());  // the list carries trials only
      seen.insert(j.index());
    }
    req.set_page_token(page.next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 100);
  EXPECT_EQ(seen.size(), 10000u);
  EXPECT_EQ(pages, 10000 / kMaxJobsPerPage);
}

// Sweep files with a large comment: listing many of them still fits one answer.
TEST_F(LimitsTest, ListSweepsCarriesNoSweepFiles) {
  const std::string comment = "# " + std::string(900000, 'c') + "\n";
  for (int i = 0; i < 6; ++i) Submit(comment + SeedSweep(1));
  grpc::ClientContext ctx;
  v1::ListSweepsResponse resp;
  grpc::Status s = experiments_->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.sweeps_size(), 6);
  EXPECT_TRUE(resp.sweeps(0).sweep().source_toml().empty());
  // GetSweep still returns the file.
  grpc::ClientContext gctx;
  v1::GetSweepRequest get;
  get.set_sweep_id(resp.sweeps(0).sweep().id());
  v1::SweepSummary one;
  ASSERT_TRUE(experiments_->GetSweep(&gctx, get, &one).ok());
  EXPECT_THAT(one.sweep().source_toml(), HasSubstr("ccccc"));
}

TEST_F(LimitsTest, WatchEventsAreBoundedAndCoverEveryJob) {
  const std::string id = Submit(SeedSweep(10000));
  {
    grpc::ClientContext ctx;
    v1::CancelSweepRequest req;
    req.set_sweep_id(id);
    v1::CancelResponse resp;
    ASSERT_TRUE(experiments_->CancelSweep(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  v1::WatchSweepRequest req;
  req.set_sweep_id(id);
  auto reader = experiments_->WatchSweep(&ctx, req);
  v1::WatchSweepEvent event;
  std::set<int> seen;
  int events = 0;
  while (reader->Read(&event)) {
    ++events;
    EXPECT_LE(event.jobs_size(), kMaxJobsPerPage);
    EXPECT_LE(event.ByteSizeLong(), kMaxPageBytes + 4096);
    EXPECT_EQ(event.summary().cancelled(), 10000);
    for (const auto& j : event.jobs()) seen.insert(j.index());
  }
  grpc::Status s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(seen.size(), 10000u);
  EXPECT_GE(events, 10);
}

TEST_F(LimitsTest, ListSweepsPagesCoverEverySweep) {
  for (int i = 0; i < kMaxSweepsPerPage + 50; ++i) Submit(SeedSweep(1));
  auto list = [&](v1::ListSweepsRequest req) {
    std::vector<std::string> ids;
    int pages = 0;
    do {
      grpc::ClientContext ctx;
      v1::ListSweepsResponse resp;
      grpc::Status s = experiments_->ListSweeps(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      EXPECT_LE(resp.sweeps_size(),
                req.page_size() > 0 ? req.page_size() : int32_t{kMaxSweepsPerPage});
      for (const auto& w : resp.sweeps()) ids.push_back(w.sweep().id());
      req.set_page_token(resp.next_page_token());
      ++pages;
    } while (!req.page_token().empty() && pages < 1000);
    return std::make_pair(ids, pages);
  };
  auto [all, pages] = list(v1::ListSweepsRequest());
  EXPECT_EQ(all.size(), static_cast<size_t>(kMaxSweepsPerPage + 50));
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());
  v1::ListSweepsRequest newest;
  newest.set_limit(10);
  newest.set_page_size(3);
  auto [last10, small_pages] = list(newest);
  EXPECT_EQ(small_pages, 4);
  EXPECT_EQ(last10, std::vector<std::string>(all.end() - 10, all.end()));
}

TEST_F(LimitsTest, WatchPageSizeSplitsALook) {
  const std::string id = Submit(SeedSweep(25));
  {
    grpc::ClientContext ctx;
    v1::CancelSweepRequest req;
    req.set_sweep_id(id);
    v1::CancelResponse resp;
    ASSERT_TRUE(experiments_->CancelSweep(&ctx, req, &resp).ok());
  }
  grpc::ClientContext ctx;
  v1::WatchSweepRequest req;
  req.set_sweep_id(id);
  req.set_page_size(10);
  auto reader = experiments_->WatchSweep(&ctx, req);
  v1::WatchSweepEvent event;
  std::vector<std::pair<int, bool>> events;
  while (reader->Read(&event)) events.emplace_back(event.jobs_size(), event.more_jobs());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(events, (std::vector<std::pair<int, bool>>{{10, true}, {10, true}, {5, false}}));
}

// Granted leases carry full configs: one Lease answer stays within a page's
// bytes (the worker asks again for more).
TEST_F(LimitsTest, LeaseAnswerIsBoundedInBytes) {
  Submit(SeedSweep(400, absl::StrCat("target = \"", std::string(4000, 'z'), "\"")));
  const std::string w = Register();
  grpc::ClientContext ctx;
  v1::LeaseRequest req;
  req.set_worker_id(w);
  req.set_max_jobs(1000);
  v1::LeaseResponse resp;
  ASSERT_TRUE(workers_->Lease(&ctx, req, &resp).ok());
  EXPECT_GT(resp.leases_size(), 100);
  EXPECT_LT(resp.leases_size(), 400);
  EXPECT_LE(resp.ByteSizeLong(), kMaxPageBytes + 8192);
  EXPECT_GT(Lease(w, 1000).leases_size(), 0);  // the rest comes with the next call
}

// ---- workers -----------------------------------------------------------------------------

TEST_F(LimitsTest, RegisterIsIdempotentPerWorkerAcrossRestarts) {
  StartSqlite();
  const std::string a = Register("host:1", "req-1");
  EXPECT_EQ(Register("host:1", "req-1"), a);
  // Another worker reusing the request id is another worker.
  const std::string b = Register("host:2", "req-1");
  EXPECT_NE(b, a);
  server_.reset();
  StartServer(*OpenSqliteStore(SqliteStoreOptions(db_path_)));
  EXPECT_EQ(Register("host:1", "req-1"), a);
  EXPECT_EQ(Workers().size(), 2u);
}

TEST_F(LimitsTest, StaleWorkersExpire) {
  StartSqlite();
  const std::string stale = Register("gone");
  clock_.AdvanceMs(kWorkerExpiryMs / 2);
  const std::string live = Register("alive");
  clock_.AdvanceMs(kWorkerExpiryMs / 2 + 1);
  Tick();
  auto workers = Workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].id(), live);
  // Its row is gone too, and it is told to register again.
  EXPECT_EQ(server_->store().ListWorkers()->size(), 1u);
  grpc::ClientContext ctx;
  v1::LeaseRequest req;
  req.set_worker_id(stale);
  req.set_max_jobs(1);
  v1::LeaseResponse resp;
  EXPECT_EQ(workers_->Lease(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  // A worker that keeps leasing stays.
  clock_.AdvanceMs(kWorkerExpiryMs - 1000);
  Lease(live, 1);
  clock_.AdvanceMs(2000);
  Tick();
  EXPECT_EQ(Workers().size(), 1u);
}

TEST_F(LimitsTest, RegisterFloodFromOneCallerIsBounded) {
  int refused = 0;
  grpc::Status last;
  for (int i = 0; i < kMaxWorkersPerIdentity + 10; ++i) {
    grpc::Status s = TryRegister("flood", absl::StrCat("r", i));
    if (!s.ok()) {
      ++refused;
      last = s;
    }
  }
  EXPECT_EQ(refused, 10);
  EXPECT_EQ(last.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The caller is the worker token: the error names its id.
  EXPECT_THAT(last.error_message(), AllOf(HasSubstr(*TokenIdOf(tokens_.worker)),
                                          HasSubstr(absl::StrCat(kMaxWorkersPerIdentity))));
  EXPECT_EQ(Workers().size(), static_cast<size_t>(kMaxWorkersPerIdentity));
  // Another caller (token) is not affected, and expired workers free their places.
  auto other = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker2));
  EXPECT_TRUE(TryRegister("other", "r0", nullptr, other.get()).ok());
  clock_.AdvanceMs(kWorkerExpiryMs + 1);
  Tick();
  EXPECT_TRUE(TryRegister("flood", "again").ok());
}

// ---- the CLI follows pages ---------------------------------------------------------------

class LimitsCliTest : public LimitsTest {
 protected:
  void SetUp() override {
    StartServer(NewInMemoryStore(), "127.0.0.1:0");
    token_file_ =
        (fs::temp_directory_path() / absl::StrCat("qsweep_limits_", getpid(), ".token")).string();
    ASSERT_TRUE(WriteSecretFile(token_file_, tokens_.alice).ok());
  }
  void TearDown() override { fs::remove(token_file_); }
  int Cli(const std::string& command, std::vector<std::string> args, std::string& out) {
    args.push_back("--server");
    args.push_back(absl::StrCat("127.0.0.1:", server_->port()));
    args.push_back("--token-file");
    args.push_back(token_file_);
    std::ostringstream o, e;
    int code = RunServiceCommand(command, args, o, e);
    out = o.str() + e.str();
    return code;
  }
  std::string token_file_;
};

TEST_F(LimitsCliTest, TenThousandTrialsListWatchAndExport) {
  const auto start = std::chrono::steady_clock::now();
  const std::string id = Submit(SeedSweep(10000));
  auto leases = Lease(Register(), 3);
  ASSERT_EQ(leases.leases_size(), 3);
  {
    grpc::ClientContext ctx;
    v1::CompleteRequest req;
    req.set_lease_id(leases.leases(1).lease_id());
    req.set_epoch(leases.leases(1).epoch());
    (*req.mutable_final_metrics())["test_acc_epoch"] = 0.75;
    v1::CompleteResponse resp;
    ASSERT_TRUE(workers_->Complete(&ctx, req, &resp).ok());
  }
  std::string out;
  ASSERT_EQ(Cli("jobs", {id, "--format", "csv"}, out), 0) << out.substr(0, 500);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 10001);
  EXPECT_THAT(out, HasSubstr("\n9999,train,PENDING,9999,"));
  ASSERT_EQ(Cli("jobs", {id, "--sort", "test_acc_epoch", "--format", "json"}, out), 0)
      << out.substr(0, 500);
  EXPECT_EQ(out.find("\"index\": 1,"), out.find("\"index\":"));  // best first
  ASSERT_EQ(Cli("cancel", {id}, out), 0) << out;
  // Leased jobs stop at their next heartbeat; let their leases lapse.
  clock_.AdvanceMs(SchedulerOptions().lease_ttl_ms + 1);
  Tick();
  ASSERT_EQ(Cli("watch", {id}, out), 0) << out.substr(0, 500);
  EXPECT_THAT(out, HasSubstr("finished: 1 succeeded, 0 failed, 9999 cancelled"));
  ASSERT_EQ(Cli("status", {}, out), 0) << out;
  EXPECT_THAT(out, HasSubstr("10000"));
  // `status` follows ListSweeps pages.
  for (int i = 0; i < kMaxSweepsPerPage; ++i) Submit(SeedSweep(1));
  ASSERT_EQ(Cli("status", {"--format", "json"}, out), 0) << out.substr(0, 500);
  EXPECT_EQ(nlohmann::json::parse(out).size(), static_cast<size_t>(kMaxSweepsPerPage + 1));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 120) << "10,000 trials took " << seconds << " s";
}

}  // namespace
}  // namespace qsweep
