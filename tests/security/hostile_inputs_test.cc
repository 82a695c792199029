// A corpus of hostile inputs across every surface a user or a worker can
// reach: sweep and transform configs, RPC fields, uploads, token files, CLI
// flags and data files. Each row must be refused with an error that names the
// field, key or file; nothing may crash; and nothing already stored changes
// (a snapshot of every sweep, job, artifact, report, metric, worker and token
// is compared before and after each row).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/data_cli.h"
#include "client/service_cli.h"
#include "common/limits.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/test_tokens.h"
#include "worker/core/data/csv.h"
#include "worker/core/data/prepared_file.h"
#include "worker/core/torch/checkpoint.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

// What a row did: refused (any error) with this message, or accepted.
struct Outcome {
  bool refused = false;
  std::string message;
};

Outcome From(const grpc::Status& s) { return {!s.ok(), s.error_message()}; }
Outcome From(const absl::Status& s) { return {!s.ok(), std::string(s.message())}; }

struct HostileCase {
  std::string surface;  // config, rpc, upload, token, cli, data
  std::string name;
  std::function<Outcome()> run;
  // Every one of these must appear in the error (the field, key or file).
  std::vector<std::string> expect;
};

constexpr const char* kBase = "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n";

std::string Sweep(const std::string& extra) { return absl::StrCat(kBase, extra); }

class HostileInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("qsweep_hostile_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto store = NewInMemoryStore();
    tokens_ = testing::AddTestTokens(*store);
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.coordinator.tick_interval_ms = 0;
    auto server = Server::Start(options, std::move(store), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    alice_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    bob_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.bob));
    worker_ = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker));
    token_file_ = (dir_ / "alice.token").string();
    ASSERT_TRUE(WriteSecretFile(token_file_, tokens_.alice).ok());
    Populate();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  // Something of everything in the store: sweeps of two owners, a leased job
  // with an uploaded checkpoint and metrics, a worker and the tokens.
  void Populate() {
    alice_sweep_ = Submit(*alice_, Sweep("[sweep.grid]\nseed = [1, 2]\n"));
    bob_sweep_ = Submit(*bob_, Sweep("[sweep]\nname = \"bobs\"\n"));
    {
      grpc::ClientContext ctx;
      v1::RegisterRequest req;
      req.set_name("w1");
      req.set_device("cpu");
      req.set_slots(1);
      v1::RegisterResponse resp;
      ASSERT_TRUE(worker_->Register(&ctx, req, &resp).ok());
      worker_id_ = resp.worker_id();
    }
    {
      grpc::ClientContext ctx;
      v1::LeaseRequest req;
      req.set_worker_id(worker_id_);
      req.set_max_jobs(1);
      v1::LeaseResponse resp;
      ASSERT_TRUE(worker_->Lease(&ctx, req, &resp).ok());
      ASSERT_EQ(resp.leases_size(), 1);
      lease_ = resp.leases(0);
    }
    ASSERT_FALSE(lease_.job().id().empty());
    job_id_ = lease_.job().id();
    {
      grpc::ClientContext ctx;
      v1::HeartbeatRequest req;
      req.set_worker_id(worker_id_);
      auto* u = req.add_updates();
      u->set_lease_id(lease_.lease_id());
      u->set_epoch(lease_.epoch());
      auto* m = u->add_metrics();
      m->set_name("train_loss");
      m->set_step(1);
      m->set_value(0.5);
      v1::HeartbeatResponse resp;
      ASSERT_TRUE(worker_->Heartbeat(&ctx, req, &resp).ok());
    }
    const std::string ckpt = "checkpoint bytes";
    ASSERT_TRUE(Upload(ckpt, "checkpoint", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                       Sha256Hex(ckpt))
                    .ok());
    stored_sha_ = Sha256Hex(ckpt);
  }

  std::string Submit(v1::Experiments::Stub& stub, const std::string& toml) {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    v1::SubmitSweepResponse resp;
    grpc::Status s = stub.SubmitSweep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  grpc::Status Upload(const std::string& bytes, const std::string& kind, const std::string& name,
                      const std::string& job_id, const std::string& lease_id, int64_t epoch,
                      const std::string& sha, int64_t size = -1,
                      v1::Workers::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = (stub ? stub : worker_.get())->UploadArtifact(&ctx, &resp);
    v1::ArtifactChunk chunk;
    auto* info = chunk.mutable_info();
    info->set_sha256(sha);
    info->set_kind(kind);
    info->set_size_bytes(size >= 0 ? size : static_cast<int64_t>(bytes.size()));
    info->set_job_id(job_id);
    info->set_name(name);
    chunk.set_lease_id(lease_id);
    chunk.set_lease_epoch(epoch);
    chunk.set_data(bytes);
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }

  // Every record the store holds, serialized.
  std::string Snapshot() {
    Store& s = server_->store();
    std::string out;
    auto sweeps = s.ListSweeps();
    EXPECT_TRUE(sweeps.ok());
    std::vector<std::string> parts;
    for (const auto& sweep : *sweeps) {
      std::string p = sweep.SerializeAsString();
      auto jobs = s.ListJobs(JobFilter{sweep.id(), {}});
      EXPECT_TRUE(jobs.ok());
      for (const auto& job : *jobs) {
        absl::StrAppend(&p, job.SerializeAsString());
        if (auto a = s.ListAttempts(job.id()); a.ok())
          for (const auto& x : *a) absl::StrAppend(&p, x.SerializeAsString());
        if (auto a = s.ListArtifacts(job.id()); a.ok())
          for (const auto& x : *a) {
            absl::StrAppend(&p, x.SerializeAsString());
            if (auto b = s.GetArtifactBytes(x.sha256()); b.ok()) absl::StrAppend(&p, *b);
          }
        for (int32_t attempt = 0; attempt <= job.attempt(); ++attempt)
          if (auto m = s.ListMetrics(job.id(), attempt, ""); m.ok())
            for (const auto& x : *m) absl::StrAppend(&p, x.SerializeAsString());
      }
      parts.push_back(std::move(p));
    }
    std::sort(parts.begin(), parts.end());
    for (const auto& p : parts) absl::StrAppend(&out, p, "\n--\n");
    if (auto w = s.ListWorkers(); w.ok())
      for (const auto& x : *w) absl::StrAppend(&out, x.SerializeAsString());
    if (auto t = s.ListTokens(); t.ok())
      for (const auto& x : *t) absl::StrAppend(&out, x.SerializeAsString());
    return out;
  }

  // The CLI against this server, with `token_file` (default: alice's).
  Outcome Cli(const std::string& command, std::vector<std::string> args,
              const std::string& token_file = "") {
    args.push_back("--server");
    args.push_back(absl::StrCat("127.0.0.1:", server_->port()));
    args.push_back("--token-file");
    args.push_back(token_file.empty() ? token_file_ : token_file);
    std::ostringstream o, e;
    const int code = RunServiceCommand(command, args, o, e);
    return {code != 0, e.str() + o.str()};
  }

  std::string WriteFile(const std::string& name, const std::string& content, int mode = 0600) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    chmod(p.c_str(), mode);
    return p.string();
  }

  template <typename Req, typename Resp>
  using ExpMethod = grpc::Status (v1::Experiments::Stub::*)(grpc::ClientContext*, const Req&,
                                                            Resp*);
  template <typename Req, typename Resp>
  Outcome Call(ExpMethod<Req, Resp> method, const Req& req, v1::Experiments::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    Resp resp;
    return From(((stub ? stub : alice_.get())->*method)(&ctx, req, &resp));
  }
  template <typename Req, typename Resp>
  using WorkMethod = grpc::Status (v1::Workers::Stub::*)(grpc::ClientContext*, const Req&, Resp*);
  template <typename Req, typename Resp>
  Outcome WCall(WorkMethod<Req, Resp> method, const Req& req, v1::Workers::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    Resp resp;
    return From(((stub ? stub : worker_.get())->*method)(&ctx, req, &resp));
  }

  Outcome SubmitToml(const std::string& toml) {
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    return Call(&v1::Experiments::Stub::SubmitSweep, req);
  }
  Outcome TransformToml(const std::string& toml) {
    v1::SubmitTransformRequest req;
    req.set_from_job_id(job_id_);
    req.set_config_toml(toml);
    return Call(&v1::Experiments::Stub::SubmitTransform, req);
  }
  v1::CompleteRequest GoodComplete() {
    v1::CompleteRequest req;
    req.set_lease_id(lease_.lease_id());
    req.set_epoch(lease_.epoch());
    return req;
  }
  Outcome Complete(const v1::CompleteRequest& req) {
    return WCall(&v1::Workers::Stub::Complete, req);
  }

  std::vector<HostileCase> Cases();

  fs::path dir_;
  FakeClock clock_;
  testing::TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> alice_, bob_;
  std::unique_ptr<v1::Workers::Stub> worker_;
  std::string token_file_, alice_sweep_, bob_sweep_, worker_id_, job_id_, stored_sha_;
  v1::GrantedLease lease_;
};

// A prepared dataset file with the given header fields (no arrays).
std::string PreparedHeader(uint32_t version, int64_t train_rows, int64_t test_rows,
                           bool fix_digest) {
  auto u64 = [](uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) { return u64(s.size()) + s; };
  std::string meta = str("x") + u64(0) + u64(1) + u64(1) + u64(static_cast<uint64_t>(train_rows)) +
                     u64(static_cast<uint64_t>(test_rows)) + u64(1) + str("f") + u64(1) + str("c") +
                     str("") + str("") + u64(0) + u64(0) + u64(0) + u64(0);
  std::string body = u64(meta.size()) + meta;
  body.append((8 - (88 + meta.size()) % 8) % 8, '\0');
  std::string head = "QSWPDSET";
  head.append(reinterpret_cast<const char*>(&version), 4);
  head.append(4, '\0');
  head += fix_digest ? Sha256Hex(body) : std::string(64, '0');
  return head + body;
}

std::vector<HostileCase> HostileInputsTest::Cases() {
  std::vector<HostileCase> c;
  auto add = [&](std::string surface, std::string name, std::function<Outcome()> run,
                 std::vector<std::string> expect) {
    c.push_back({std::move(surface), std::move(name), std::move(run), std::move(expect)});
  };
  auto sweep = [&](std::string name, std::string toml, std::vector<std::string> expect) {
    add(
        "config", std::move(name), [this, toml] { return SubmitToml(toml); }, std::move(expect));
  };
  auto transform = [&](std::string name, std::string toml, std::vector<std::string> expect) {
    add(
        "config", std::move(name), [this, toml] { return TransformToml(toml); }, std::move(expect));
  };

  // ---- sweep files (SubmitSweep.sweep_toml) ----
  sweep("model names a server file", "model = \"/etc/passwd\"\ndataset = \"jsc\"\n", {"model"});
  sweep("model names a device", "model = \"/dev/zero\"\ndataset = \"jsc\"\n", {"model"});
  sweep("model path relative", "model = \"../../x.toml\"\ndataset = \"jsc\"\n", {"model"});
  sweep("swept model is a path", Sweep("[sweep.grid]\nmodel = [\"jsc-toy\", \"/dev/zero\"]\n"),
        {"model"});
  sweep("data_dir", Sweep("data_dir = \"/tmp/evil\"\n"), {"data_dir"});
  sweep("load_name", Sweep("load_name = \"/etc/shadow\"\n"), {"load_name"});
  sweep("project_dir", Sweep("project_dir = \"/home\"\n"), {"project_dir"});
  sweep("swept data_dir", Sweep("[sweep.grid]\ndata_dir = [\"/a\", \"/b\"]\n"), {"data_dir"});
  sweep("dataset path", "model = \"jsc-tiny\"\ndataset = \"/etc/passwd\"\n", {"dataset"});
  sweep("TOML syntax error", Sweep("batch_size = = 3\n"), {":3:"});
  sweep("TOML NUL byte", Sweep(std::string("project = \"a\0b\"\n", 16)), {":3:"});
  sweep("negative batch_size", Sweep("batch_size = -1\n"), {"batch_size"});
  sweep("huge batch_size", Sweep("batch_size = 1099511627776\n"), {"batch_size"});
  sweep("string batch_size", Sweep("batch_size = \"64\"\n"), {"batch_size"});
  sweep("max_epochs over limit", Sweep("max_epochs = 100001\n"), {"max_epochs"});
  sweep("synthetic_rows over limit", Sweep("synthetic_rows = 999999999\n"), {"synthetic_rows"});
  sweep("threads over limit", Sweep("threads = 100000\n"), {"threads"});
  sweep("learning_rate not a number", Sweep("learning_rate = \"fast\"\n"), {"learning_rate"});
  sweep("project too long", Sweep(absl::StrCat("project = \"", std::string(5000, 'p'), "\"\n")),
        {"project"});
  sweep("sweep name too long",
        Sweep(absl::StrCat("[sweep]\nname = \"", std::string(300, 'n'), "\"\n")), {"name"});
  sweep("negative max_concurrency", Sweep("[sweep]\nmax_concurrency = -3\n"), {"max_concurrency"});
  sweep("negative retries", Sweep("[sweep]\nretries = -1\n"), {"retries"});
  sweep("empty grid list", Sweep("[sweep.grid]\nbatch_size = []\n"), {"batch_size"});
  {
    std::string a, b;
    for (int i = 0; i < 101; ++i) absl::StrAppend(&a, i ? "," : "", i + 1);
    sweep("grid over the trial limit",
          Sweep(absl::StrCat("[sweep.grid]\nseed = [", a, "]\nbatch_size = [", a, "]\n")),
          {"trials", absl::StrCat(kMaxTrialsPerSweep)});
  }
  sweep("negative random trials", Sweep("[sweep.random]\ntrials = -1\n"), {"trials"});
  sweep("unknown distribution",
        Sweep("[sweep.random]\ntrials = 2\nlearning_rate = { distribution = \"normal\", low = 0.1, "
              "high = 1.0 }\n"),
        {"distribution"});
  sweep("loguniform low > high",
        Sweep("[sweep.random]\ntrials = 2\nlearning_rate = { distribution = \"loguniform\", low = "
              "1.0, high = 0.001 }\n"),
        {"learning_rate"});
  sweep("inline model negative width",
        "dataset = \"jsc-synthetic\"\n[model]\nname = \"m\"\nhidden = [-4]\n", {"hidden"});
  sweep("report file_name escapes",
        Sweep("[passes.report_graph]\nfile_name = \"../../home/user/.bashrc\"\n"), {"file_name"});
  sweep("report save_path absolute",
        Sweep("[passes.report_node_meta_param]\nsave_path = \"/etc/cron.d/x\"\n"), {"save_path"});
  add("config", "empty sweep_toml", [this] { return SubmitToml(""); }, {"sweep_toml"});
  add("config", "sweep_toml over 1 MiB",
      [this] {
        return SubmitToml(Sweep(absl::StrCat("# ", std::string(kMaxSweepTomlBytes, 'x'), "\n")));
      },
      {"sweep_toml"});

  // ---- transform configs (SubmitTransform.config_toml) ----
  transform("transform data_dir", "data_dir = \"/tmp/evil\"\n[passes.report_graph]\n",
            {"data_dir"});
  transform("transform load_name", "load_name = \"/etc/passwd\"\n[passes.report_graph]\n",
            {"load_name"});
  transform("transform report escapes", "[passes.report_graph]\nfile_name = \"/etc/passwd\"\n",
            {"file_name"});
  transform("transform model path", "model = \"/etc/passwd\"\n[passes.report_graph]\n", {"model"});

  // ---- Experiments RPC fields ----
  add("rpc", "GetSweep without id",
      [this] { return Call(&v1::Experiments::Stub::GetSweep, v1::GetSweepRequest()); },
      {"sweep_id"});
  add("rpc", "ListJobs bad state",
      [this] {
        v1::ListJobsRequest r;
        r.set_sweep_id(alice_sweep_);
        r.set_state(static_cast<v1::JobState>(99));
        return Call(&v1::Experiments::Stub::ListJobs, r);
      },
      {"state"});
  add("rpc", "ListJobs sort_by injection",
      [this] {
        v1::ListJobsRequest r;
        r.set_sweep_id(alice_sweep_);
        r.set_sort_by("index; DROP TABLE jobs");
        return Call(&v1::Experiments::Stub::ListJobs, r);
      },
      {"sort_by"});
  add("rpc", "ListJobs negative page_size",
      [this] {
        v1::ListJobsRequest r;
        r.set_sweep_id(alice_sweep_);
        r.set_page_size(-1);
        return Call(&v1::Experiments::Stub::ListJobs, r);
      },
      {"page_size"});
  add("rpc", "ListSweeps forged page_token",
      [this] {
        v1::ListSweepsRequest r;
        r.set_page_token("../../etc");
        return Call(&v1::Experiments::Stub::ListSweeps, r);
      },
      {"page_token"});
  add("rpc", "SubmitSweep request_id too long",
      [this] {
        v1::SubmitSweepRequest r;
        r.set_sweep_toml(kBase);
        r.set_request_id(std::string(kMaxIdBytes + 1, 'r'));
        return Call(&v1::Experiments::Stub::SubmitSweep, r);
      },
      {"request_id"});
  add("rpc", "SubmitSweep idempotency_key too long",
      [this] {
        v1::SubmitSweepRequest r;
        r.set_sweep_toml(kBase);
        r.set_idempotency_key(std::string(kMaxIdBytes + 1, 'k'));
        return Call(&v1::Experiments::Stub::SubmitSweep, r);
      },
      {"idempotency_key"});
  add("rpc", "RetryJobs too many ids",
      [this] {
        v1::RetryJobsRequest r;
        r.set_sweep_id(alice_sweep_);
        for (int i = 0; i <= kMaxRetryJobIds; ++i) r.add_job_ids("j");
        return Call(&v1::Experiments::Stub::RetryJobs, r);
      },
      {"job_ids"});
  add("rpc", "RetryJobs empty id",
      [this] {
        v1::RetryJobsRequest r;
        r.add_job_ids("");
        return Call(&v1::Experiments::Stub::RetryJobs, r);
      },
      {"job_ids[0]"});
  add("rpc", "SubmitTransform without from_job_id",
      [this] {
        v1::SubmitTransformRequest r;
        r.set_config_toml("[passes.report_graph]\n");
        return Call(&v1::Experiments::Stub::SubmitTransform, r);
      },
      {"from_job_id"});
  add("rpc", "SubmitTransform fine_tune_epochs",
      [this] {
        v1::SubmitTransformRequest r;
        r.set_from_job_id(job_id_);
        r.set_config_toml("[passes.report_graph]\n");
        r.set_fine_tune_epochs(-5);
        return Call(&v1::Experiments::Stub::SubmitTransform, r);
      },
      {"fine_tune_epochs"});
  add("rpc", "CancelSweep of another user's sweep",
      [this] {
        v1::CancelSweepRequest r;
        r.set_sweep_id(bob_sweep_);
        return Call(&v1::Experiments::Stub::CancelSweep, r);
      },
      {bob_sweep_});
  add("rpc", "RetryJobs of another user's sweep",
      [this] {
        v1::RetryJobsRequest r;
        r.set_sweep_id(alice_sweep_);
        return Call(&v1::Experiments::Stub::RetryJobs, r, bob_.get());
      },
      {alice_sweep_});
  add("rpc", "GetJob of another user's job",
      [this] {
        v1::GetJobRequest r;
        r.set_job_id(job_id_);
        return Call(&v1::Experiments::Stub::GetJob, r, bob_.get());
      },
      {job_id_});
  add("rpc", "GetMetrics name too long",
      [this] {
        v1::GetMetricsRequest r;
        r.set_job_id(job_id_);
        r.set_name(std::string(kMaxIdBytes + 1, 'm'));
        return Call(&v1::Experiments::Stub::GetMetrics, r);
      },
      {"name"});
  add("rpc", "GetReport without pass_name",
      [this] {
        v1::GetReportRequest r;
        r.set_job_id(job_id_);
        return Call(&v1::Experiments::Stub::GetReport, r);
      },
      {"pass_name"});

  // ---- Workers RPC fields ----
  add("rpc", "Register bad device",
      [this] {
        v1::RegisterRequest r;
        r.set_device("cuda:0;rm -rf /");
        r.set_slots(1);
        return WCall(&v1::Workers::Stub::Register, r);
      },
      {"device"});
  add("rpc", "Register zero slots",
      [this] {
        v1::RegisterRequest r;
        r.set_device("cpu");
        r.set_slots(0);
        return WCall(&v1::Workers::Stub::Register, r);
      },
      {"slots"});
  add("rpc", "Register name too long",
      [this] {
        v1::RegisterRequest r;
        r.set_device("cpu");
        r.set_slots(1);
        r.set_name(std::string(kMaxIdBytes + 1, 'w'));
        return WCall(&v1::Workers::Stub::Register, r);
      },
      {"name"});
  add("rpc", "Lease max_jobs over slots limit",
      [this] {
        v1::LeaseRequest r;
        r.set_worker_id(worker_id_);
        r.set_max_jobs(100000);
        return WCall(&v1::Workers::Stub::Lease, r);
      },
      {"max_jobs"});
  add("rpc", "Lease wait_ms negative",
      [this] {
        v1::LeaseRequest r;
        r.set_worker_id(worker_id_);
        r.set_max_jobs(1);
        r.set_wait_ms(-1);
        return WCall(&v1::Workers::Stub::Lease, r);
      },
      {"wait_ms"});
  add("rpc", "Heartbeat too many updates",
      [this] {
        v1::HeartbeatRequest r;
        r.set_worker_id(worker_id_);
        for (int i = 0; i <= kMaxLeaseUpdates; ++i) {
          auto* u = r.add_updates();
          u->set_lease_id(lease_.lease_id());
          u->set_epoch(lease_.epoch());
        }
        return WCall(&v1::Workers::Stub::Heartbeat, r);
      },
      {"updates"});
  add("rpc", "Heartbeat too many metrics",
      [this] {
        v1::HeartbeatRequest r;
        r.set_worker_id(worker_id_);
        auto* u = r.add_updates();
        u->set_lease_id(lease_.lease_id());
        u->set_epoch(lease_.epoch());
        for (int i = 0; i <= kMaxMetricsPerRequest; ++i) {
          auto* m = u->add_metrics();
          m->set_name("train_loss");
          m->set_step(100 + i);
          m->set_value(1);
        }
        return WCall(&v1::Workers::Stub::Heartbeat, r);
      },
      {"metrics"});
  add("rpc", "Complete without lease_id",
      [this] {
        auto r = GoodComplete();
        r.clear_lease_id();
        return Complete(r);
      },
      {"lease_id"});
  add("rpc", "Complete guessed lease id",
      [this] {
        auto r = GoodComplete();
        r.set_lease_id(absl::StrCat(job_id_, "#", lease_.epoch()));
        return Complete(r);
      },
      {"lease"});
  add("rpc", "Complete stale epoch",
      [this] {
        auto r = GoodComplete();
        r.set_epoch(lease_.epoch() + 7);
        return Complete(r);
      },
      {"epoch"});
  add("rpc", "Complete bad checkpoint hash",
      [this] {
        auto r = GoodComplete();
        r.set_best_checkpoint_sha256("../../etc/passwd");
        return Complete(r);
      },
      {"best_checkpoint_sha256"});
  add("rpc", "Complete result_json too big",
      [this] {
        auto r = GoodComplete();
        r.set_result_json(std::string(kMaxResultJsonBytes + 1, '{'));
        return Complete(r);
      },
      {"result_json"});
  add("rpc", "Complete too many final metrics",
      [this] {
        auto r = GoodComplete();
        for (int i = 0; i <= kMaxFinalMetrics; ++i)
          (*r.mutable_final_metrics())[absl::StrCat("m", i)] = i;
        return Complete(r);
      },
      {"final_metrics"});
  add("rpc", "Complete empty final metric name",
      [this] {
        auto r = GoodComplete();
        (*r.mutable_final_metrics())[""] = 1;
        return Complete(r);
      },
      {"final_metrics"});
  add("rpc", "Complete report too big",
      [this] {
        auto r = GoodComplete();
        auto* rep = r.add_reports();
        rep->set_pass_name("report_graph");
        rep->set_text(std::string(kMaxReportBytes + 1, 't'));
        return Complete(r);
      },
      {"reports[0]"});
  add("rpc", "Complete report without pass_name",
      [this] {
        auto r = GoodComplete();
        r.add_reports()->set_text("x");
        return Complete(r);
      },
      {"reports[0].pass_name"});
  add("rpc", "Fail error too long",
      [this] {
        v1::FailRequest r;
        r.set_lease_id(lease_.lease_id());
        r.set_epoch(lease_.epoch());
        r.set_error(std::string(kMaxErrorBytes + 1, 'e'));
        return WCall(&v1::Workers::Stub::Fail, r);
      },
      {"error"});
  add("rpc", "Fail by another worker identity",
      [this] {
        auto other = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker2));
        v1::FailRequest r;
        r.set_lease_id(lease_.lease_id());
        r.set_epoch(lease_.epoch());
        r.set_error("x");
        return WCall(&v1::Workers::Stub::Fail, r, other.get());
      },
      {"lease"});

  // ---- uploads (Workers.UploadArtifact) ----
  const std::string evil = "evil weights";
  add("upload", "hash does not match the bytes",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           stored_sha_));
      },
      {"sha256"});
  add("upload", "name is a path",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "../../best", job_id_, lease_.lease_id(),
                           lease_.epoch(), Sha256Hex(evil)));
      },
      {"info.name"});
  add("upload", "kind is dataset",
      [this, evil] {
        return From(Upload(evil, "dataset", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil)));
      },
      {"info.kind"});
  add("upload", "a resume state under another name (overwrite best)",
      [this, evil] {
        return From(Upload(evil, "resume", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil)));
      },
      {"info.name"});
  add("upload", "a resume state without its epochs",
      [this, evil] {
        return From(Upload(evil, "resume", "resume", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil)));
      },
      {"info.epochs_done"});
  add("upload", "without a lease",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "best", job_id_, "", 0, Sha256Hex(evil)));
      },
      {"lease_id"});
  add("upload", "another job's lease (swap a checkpoint)",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "best", "some-other-job", lease_.lease_id(),
                           lease_.epoch(), Sha256Hex(evil)));
      },
      {"some-other-job"});
  add("upload", "another worker identity",
      [this, evil] {
        auto other = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker2));
        return From(Upload(evil, "checkpoint", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil), -1, other.get()));
      },
      {"lease"});
  add("upload", "declared size over the limit",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil), kMaxArtifactBytes + 1));
      },
      {"size"});
  add("upload", "declared size differs from the bytes",
      [this, evil] {
        return From(Upload(evil, "checkpoint", "best", job_id_, lease_.lease_id(), lease_.epoch(),
                           Sha256Hex(evil), 3));
      },
      {"size"});

  // ---- tokens (RPC metadata and token files) ----
  add("token", "no token",
      [this] {
        auto stub = v1::Experiments::NewStub(server_->InProcessChannel(""));
        return Call(&v1::Experiments::Stub::ListSweeps, v1::ListSweepsRequest(), stub.get());
      },
      {"ListSweeps"});
  add("token", "malformed token",
      [this] {
        auto stub = v1::Experiments::NewStub(server_->InProcessChannel("qsw_x_y"));
        return Call(&v1::Experiments::Stub::ListSweeps, v1::ListSweepsRequest(), stub.get());
      },
      {"token"});
  add("token", "unknown token of the right shape",
      [this] {
        auto stub = v1::Experiments::NewStub(server_->InProcessChannel(testing::FixedToken('z')));
        return Call(&v1::Experiments::Stub::ListSweeps, v1::ListSweepsRequest(), stub.get());
      },
      {"token"});
  add("token", "worker token on Experiments",
      [this] {
        auto stub = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.worker));
        return Call(&v1::Experiments::Stub::ListSweeps, v1::ListSweepsRequest(), stub.get());
      },
      {"ListSweeps"});
  add("token", "user token on Workers",
      [this] {
        auto stub = v1::Workers::NewStub(server_->InProcessChannel(tokens_.alice));
        v1::RegisterRequest r;
        r.set_device("cpu");
        r.set_slots(1);
        return WCall(&v1::Workers::Stub::Register, r, stub.get());
      },
      {"Register"});
  add("token", "token file readable by others",
      [this] { return Cli("status", {}, WriteFile("open.token", tokens_.alice, 0644)); },
      {"open.token", "chmod"});
  add("token", "token file missing",
      [this] { return Cli("status", {}, (dir_ / "missing.token").string()); }, {"missing.token"});
  add("token", "token file empty", [this] { return Cli("status", {}, WriteFile("e.token", "")); },
      {"e.token"});
  add("token", "token file holds garbage",
      [this] { return Cli("status", {}, WriteFile("g.token", "not a token\n\x01\x02")); },
      {"g.token"});
  add("token", "token file is a folder",
      [this] {
        fs::create_directories(dir_ / "dir.token");
        chmod((dir_ / "dir.token").c_str(), 0700);
        return Cli("status", {}, (dir_ / "dir.token").string());
      },
      {"dir.token"});

  // ---- CLI flags ----
  add("cli", "jobs --sort injection",
      [this] {
        return Cli("jobs", {alice_sweep_, "--sort", "a;b"});
      },
      {"sort"});
  add("cli", "jobs --state unknown",
      [this] {
        return Cli("jobs", {alice_sweep_, "--state", "X"});
      },
      {"state"});
  add("cli", "jobs --format unknown",
      [this] {
        return Cli("jobs", {alice_sweep_, "--format", "xml"});
      },
      {"format"});
  add("cli", "submit a missing file",
      [this] { return Cli("submit", {(dir_ / "nope.toml").string()}); }, {"nope.toml"});
  add("cli", "submit a sweep with data_dir",
      [this] { return Cli("submit", {WriteFile("dd.toml", Sweep("data_dir = \"/tmp/evil\"\n"))}); },
      {"data_dir"});
  add("cli", "checkpoint get --name path",
      [this] {
        return Cli("checkpoint", {"get", job_id_, "--name", "../../etc/passwd"});
      },
      {"artifact '../../etc/passwd'", "nothing downloaded"});
  add("cli", "show another user's job",
      [this] { return Cli("show", {job_id_}, WriteFile("bob.token", tokens_.bob)); }, {job_id_});
  add("cli", "cancel another user's sweep", [this] { return Cli("cancel", {bob_sweep_}); },
      {bob_sweep_});

  // ---- data files ----
  auto csv = [&](std::string name, std::string text, std::vector<std::string> expect,
                 CsvTableOptions options = {}) {
    add(
        "data", std::move(name),
        [this, text, options] {
          return From(ReadCsvTable(WriteFile("in.csv", text), options).status());
        },
        std::move(expect));
  };
  csv("CSV NaN value", "a,b,y\n1,nan,0\n", {"in.csv:2:", "column 'b'"});
  csv("CSV infinite value", "a,b,y\n1,1e999,0\n", {"in.csv:2:", "column 'b'"});
  csv("CSV wrong column count", "a,b,y\n1,2\n", {"in.csv:2:", "columns"});
  csv("CSV no header", "", {"in.csv"});
  csv("CSV missing label column", "a,b\n1,2\n", {"in.csv", "class"},
      CsvTableOptions{{}, "class", {}});
  csv("CSV unknown label", "a,y\n1,q\n2,zz\n", {"in.csv:3:", "column 'y'", "allowed: q, w"},
      CsvTableOptions{{}, "y", {"q", "w"}});
  add("data", "qsweep data import of a hostile CSV",
      [this] {
        std::ostringstream o, e;
        const int code = RunDataCommand({"import", WriteFile("h.csv", "a,y\n1,\"\n"), "--name", "h",
                                         "--data-dir", (dir_ / "data").string()},
                                        o, e);
        return Outcome{code != 0, e.str()};
      },
      {"h.csv"});
  auto prepared = [&](std::string name, std::string bytes, std::vector<std::string> expect) {
    add(
        "data", std::move(name),
        [this, bytes] { return From(ReadPreparedFile(WriteFile("p.qsds", bytes)).status()); },
        std::move(expect));
  };
  prepared("prepared file bad magic", "NOTQSWEP" + std::string(120, '\0'), {"p.qsds", "magic"});
  prepared("prepared file truncated header", "QSWPDSET", {"p.qsds", "truncated"});
  prepared("prepared file future version", PreparedHeader(9, 1, 0, true), {"p.qsds", "version"});
  prepared("prepared file rows overflow int64", PreparedHeader(1, INT64_MAX - 1, 2, true),
           {"p.qsds"});
  prepared("prepared file digest mismatch", PreparedHeader(1, 0, 0, false), {"p.qsds"});
  auto record = [&](std::string name, std::string text, std::vector<std::string> expect) {
    add(
        "data", std::move(name),
        [text] { return From(ParseCheckpointRecord("c.ckpt", text).status()); }, std::move(expect));
  };
  record("checkpoint record not JSON", "{\"format\":", {"c.ckpt", "JSON"});
  record("checkpoint record format is a number", "{\"format\": 1}", {"c.ckpt", "format"});
  record("checkpoint record future version",
         "{\"format\": \"qsweep-checkpoint\", \"format_version\": 99}",
         {"c.ckpt", "format_version"});
  record("checkpoint record negative width",
         "{\"format\": \"qsweep-checkpoint\", \"format_version\": 1, \"spec\": {\"name\": \"m\", "
         "\"in_features\": 16, \"num_classes\": 5, \"layers\": [{\"type\": \"linear\", \"in\": 16, "
         "\"out\": -5}]}}",
         {"c.ckpt", "out"});
  return c;
}

TEST_F(HostileInputsTest, EveryHostileInputIsRefusedByNameAndChangesNothing) {
  const std::vector<HostileCase> cases = Cases();
  ASSERT_GE(cases.size(), 60u);
  RecordProperty("cases", static_cast<int>(cases.size()));
  const std::string before = Snapshot();
  ASSERT_THAT(before, ::testing::HasSubstr(stored_sha_));
  std::map<std::string, int> per_surface;
  for (const auto& hc : cases) {
    SCOPED_TRACE(absl::StrCat("[", hc.surface, "] ", hc.name));
    const Outcome out = hc.run();
    EXPECT_TRUE(out.refused) << "accepted: " << out.message;
    for (const auto& e : hc.expect) EXPECT_THAT(out.message, ::testing::HasSubstr(e));
    EXPECT_TRUE(Snapshot() == before) << "the store changed";
    ++per_surface[hc.surface];
  }
  for (const char* s : {"config", "rpc", "upload", "token", "cli", "data"})
    EXPECT_GE(per_surface[s], 4) << s;
  // The store still serves what it held: alice's checkpoint downloads intact.
  auto bytes = server_->store().GetArtifactBytes(stored_sha_);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, "checkpoint bytes");
}

}  // namespace
}  // namespace qsweep
