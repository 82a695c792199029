// Authentication, roles, ownership and transport security of qsweep-server,
// through real gRPC calls: in-process channels (handlers check the metadata),
// local-credential TCP ports and TLS ports (the auth processor checks first).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/secrets.h"
#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "storage/sqlite_store.h"
#include "tests/test_util/in_process_server.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kSweep[] = R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
[sweep]
name = "mine"
[sweep.grid]
learning_rate = [1e-3, 1e-2]
)";

fs::path TempDir(const std::string& tag) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("qsweep_auth_", tag, "_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

class AuthTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override { StartServer(NewInMemoryStore()); }

  std::unique_ptr<v1::Experiments::Stub> Exp(const std::string& token) {
    return v1::Experiments::NewStub(server_->InProcessChannel(token));
  }
  std::unique_ptr<v1::Workers::Stub> Wrk(const std::string& token) {
    return v1::Workers::NewStub(server_->InProcessChannel(token));
  }
  std::unique_ptr<v1::Tokens::Stub> Tok(const std::string& token) {
    return v1::Tokens::NewStub(server_->InProcessChannel(token));
  }

  std::string Submit(const std::string& token) {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(kSweep);
    v1::SubmitSweepResponse resp;
    grpc::Status s = Exp(token)->SubmitSweep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  // Registers a worker with `token` and leases one job.
  v1::GrantedLease LeaseOne(const std::string& token, std::string* worker_id = nullptr) {
    auto w = Wrk(token);
    grpc::ClientContext rctx;
    v1::RegisterRequest reg;
    reg.set_device("cpu");
    reg.set_slots(1);
    v1::RegisterResponse rresp;
    EXPECT_TRUE(w->Register(&rctx, reg, &rresp).ok());
    if (worker_id) *worker_id = rresp.worker_id();
    grpc::ClientContext lctx;
    v1::LeaseRequest lr;
    lr.set_worker_id(rresp.worker_id());
    lr.set_max_jobs(1);
    v1::LeaseResponse lresp;
    EXPECT_TRUE(w->Lease(&lctx, lr, &lresp).ok());
    return lresp.leases_size() ? lresp.leases(0) : v1::GrantedLease();
  }

  grpc::Status Upload(const std::string& token, const v1::GrantedLease& lease,
                      const std::string& name, const std::string& content, bool with_lease = true) {
    grpc::ClientContext ctx;
    v1::UploadArtifactResponse resp;
    auto writer = Wrk(token)->UploadArtifact(&ctx, &resp);
    v1::ArtifactChunk chunk;
    chunk.mutable_info()->set_sha256(Sha256Hex(content));
    chunk.mutable_info()->set_kind("checkpoint");
    chunk.mutable_info()->set_job_id(lease.job().id());
    chunk.mutable_info()->set_name(name);
    if (with_lease) {
      chunk.set_lease_id(lease.lease_id());
      chunk.set_lease_epoch(lease.epoch());
    }
    chunk.set_data(content);
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }
};

void ExpectCode(const grpc::Status& s, grpc::StatusCode code, const std::string& text) {
  EXPECT_EQ(s.error_code(), code) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr(text));
}

TEST_F(AuthTest, EveryMethodRefusesACallWithoutAToken) {
  auto e = Exp("");
  auto w = Wrk("");
  auto t = Tok("");
  auto unauth = [](const grpc::Status& s, const std::string& method) {
    ExpectCode(s, grpc::StatusCode::UNAUTHENTICATED, method);
  };
  {
    grpc::ClientContext c;
    v1::SubmitSweepResponse r;
    v1::SubmitSweepRequest q;
    q.set_sweep_toml(kSweep);
    unauth(e->SubmitSweep(&c, q, &r), "/qsweep.v1.Experiments/SubmitSweep");
  }
#define QSWEEP_UNARY(stub, svc, method, Req, Resp)                       \
  {                                                                      \
    grpc::ClientContext c;                                               \
    Resp r;                                                              \
    unauth(stub->method(&c, Req(), &r), "/qsweep.v1." #svc "/" #method); \
  }
  QSWEEP_UNARY(e, Experiments, GetSweep, v1::GetSweepRequest, v1::SweepSummary);
  QSWEEP_UNARY(e, Experiments, ListSweeps, v1::ListSweepsRequest, v1::ListSweepsResponse);
  QSWEEP_UNARY(e, Experiments, ListJobs, v1::ListJobsRequest, v1::ListJobsResponse);
  QSWEEP_UNARY(e, Experiments, GetJob, v1::GetJobRequest, v1::GetJobResponse);
  QSWEEP_UNARY(e, Experiments, CancelSweep, v1::CancelSweepRequest, v1::CancelResponse);
  QSWEEP_UNARY(e, Experiments, CancelJob, v1::CancelJobRequest, v1::CancelResponse);
  QSWEEP_UNARY(e, Experiments, RetryJobs, v1::RetryJobsRequest, v1::RetryJobsResponse);
  QSWEEP_UNARY(e, Experiments, GetMetrics, v1::GetMetricsRequest, v1::GetMetricsResponse);
  QSWEEP_UNARY(e, Experiments, SubmitTransform, v1::SubmitTransformRequest,
               v1::SubmitTransformResponse);
  QSWEEP_UNARY(e, Experiments, GetReport, v1::GetReportRequest, v1::Report);
  QSWEEP_UNARY(e, Experiments, ListWorkers, v1::ListWorkersRequest, v1::ListWorkersResponse);
  QSWEEP_UNARY(w, Workers, Register, v1::RegisterRequest, v1::RegisterResponse);
  QSWEEP_UNARY(w, Workers, Lease, v1::LeaseRequest, v1::LeaseResponse);
  QSWEEP_UNARY(w, Workers, Heartbeat, v1::HeartbeatRequest, v1::HeartbeatResponse);
  QSWEEP_UNARY(w, Workers, Complete, v1::CompleteRequest, v1::CompleteResponse);
  QSWEEP_UNARY(w, Workers, Fail, v1::FailRequest, v1::FailResponse);
  QSWEEP_UNARY(t, Tokens, CreateToken, v1::CreateTokenRequest, v1::CreateTokenResponse);
  QSWEEP_UNARY(t, Tokens, ListTokens, v1::ListTokensRequest, v1::ListTokensResponse);
  QSWEEP_UNARY(t, Tokens, RevokeToken, v1::RevokeTokenRequest, v1::RevokeTokenResponse);
#undef QSWEEP_UNARY
  {
    grpc::ClientContext c;
    auto reader = e->WatchSweep(&c, v1::WatchSweepRequest());
    v1::WatchSweepEvent ev;
    EXPECT_FALSE(reader->Read(&ev));
    unauth(reader->Finish(), "/qsweep.v1.Experiments/WatchSweep");
  }
  {
    grpc::ClientContext c;
    auto reader = e->DownloadArtifact(&c, v1::DownloadArtifactRequest());
    v1::ArtifactChunk ch;
    EXPECT_FALSE(reader->Read(&ch));
    unauth(reader->Finish(), "/qsweep.v1.Experiments/DownloadArtifact");
  }
  {
    grpc::ClientContext c;
    auto reader = w->FetchArtifact(&c, v1::FetchArtifactRequest());
    v1::ArtifactChunk ch;
    EXPECT_FALSE(reader->Read(&ch));
    unauth(reader->Finish(), "/qsweep.v1.Workers/FetchArtifact");
  }
  {
    grpc::ClientContext c;
    v1::UploadArtifactResponse r;
    auto writer = w->UploadArtifact(&c, &r);
    writer->WritesDone();
    unauth(writer->Finish(), "/qsweep.v1.Workers/UploadArtifact");
  }
  // Nothing was stored by any of them.
  EXPECT_TRUE(server_->store().ListSweeps()->empty());
  EXPECT_TRUE(server_->store().ListWorkers()->empty());
}

TEST_F(AuthTest, BadTokensAreRefusedWithoutEchoingTheSecret) {
  auto call = [&](const std::string& token) {
    grpc::ClientContext c;
    v1::ListSweepsResponse r;
    return Exp(token)->ListSweeps(&c, v1::ListSweepsRequest(), &r);
  };
  EXPECT_TRUE(call(tokens_.alice).ok());
  const std::string wrong_secret = tokens_.alice.substr(0, tokens_.alice.size() - 1) + "0";
  grpc::Status s = call(wrong_secret);
  ExpectCode(s, grpc::StatusCode::UNAUTHENTICATED, "wrong secret");
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(wrong_secret.substr(17))));
  ExpectCode(call("qsw_123"), grpc::StatusCode::UNAUTHENTICATED, "malformed token");
  ExpectCode(call(testing::FixedToken('f')), grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  grpc::ClientContext c;
  c.AddMetadata("authorization", "Basic dXNlcjpwYXNz");
  v1::ListSweepsResponse r;
  ExpectCode(v1::Experiments::NewStub(server_->InProcessChannel(""))
                 ->ListSweeps(&c, v1::ListSweepsRequest(), &r),
             grpc::StatusCode::UNAUTHENTICATED, "Bearer");
}

TEST_F(AuthTest, RolesDecideTheServiceAndNameTheMethod) {
  grpc::ClientContext c1;
  v1::ListSweepsResponse r1;
  ExpectCode(Exp(tokens_.worker)->ListSweeps(&c1, v1::ListSweepsRequest(), &r1),
             grpc::StatusCode::PERMISSION_DENIED,
             "/qsweep.v1.Experiments/ListSweeps is not allowed for a worker token");
  grpc::ClientContext c2;
  v1::RegisterRequest reg;
  reg.set_device("cpu");
  reg.set_slots(1);
  v1::RegisterResponse r2;
  ExpectCode(Wrk(tokens_.alice)->Register(&c2, reg, &r2), grpc::StatusCode::PERMISSION_DENIED,
             "/qsweep.v1.Workers/Register is not allowed for a user token");
  grpc::ClientContext c3;
  ExpectCode(Wrk(tokens_.admin)->Register(&c3, reg, &r2), grpc::StatusCode::PERMISSION_DENIED,
             "admin token");
  grpc::ClientContext c4;
  v1::ListTokensResponse r4;
  ExpectCode(Tok(tokens_.worker)->ListTokens(&c4, v1::ListTokensRequest(), &r4),
             grpc::StatusCode::PERMISSION_DENIED, "/qsweep.v1.Tokens/ListTokens");
}

TEST_F(AuthTest, RevokedAndExpiredTokensStopWorkingAtOnce) {
  // An admin creates a user token that expires in an hour.
  grpc::ClientContext c;
  v1::CreateTokenRequest req;
  req.set_role(v1::ROLE_USER);
  req.set_owner("carol");
  req.set_ttl_seconds(3600);
  v1::CreateTokenResponse created;
  ASSERT_TRUE(Tok(tokens_.admin)->CreateToken(&c, req, &created).ok());
  EXPECT_TRUE(created.token().sha256().empty());
  const std::string carol = created.secret();
  auto list = [&](const std::string& token) {
    grpc::ClientContext ctx;
    v1::ListSweepsResponse r;
    return Exp(token)->ListSweeps(&ctx, v1::ListSweepsRequest(), &r);
  };
  EXPECT_TRUE(list(carol).ok());
  clock_.AdvanceMs(3600 * 1000);
  ExpectCode(list(carol), grpc::StatusCode::UNAUTHENTICATED, "has expired");

  // Revocation takes effect on the very next call (no cache delay).
  EXPECT_TRUE(list(tokens_.bob).ok());
  grpc::ClientContext rc;
  v1::RevokeTokenRequest revoke;
  revoke.set_token_id(*TokenIdOf(tokens_.bob));
  v1::RevokeTokenResponse rr;
  ASSERT_TRUE(Tok(tokens_.admin)->RevokeToken(&rc, revoke, &rr).ok());
  EXPECT_TRUE(rr.revoked());
  ExpectCode(list(tokens_.bob), grpc::StatusCode::UNAUTHENTICATED, "was revoked");
}

TEST_F(AuthTest, UsersManageOnlyTheirOwnUserTokens) {
  auto create = [&](const std::string& token, v1::Role role, const std::string& owner,
                    v1::CreateTokenResponse* out) {
    grpc::ClientContext c;
    v1::CreateTokenRequest req;
    req.set_role(role);
    req.set_owner(owner);
    req.set_name("laptop");
    return Tok(token)->CreateToken(&c, req, out);
  };
  v1::CreateTokenResponse mine;
  ASSERT_TRUE(create(tokens_.alice, v1::ROLE_USER, "", &mine).ok());
  EXPECT_EQ(mine.token().owner(), "alice");
  EXPECT_THAT(mine.secret(), ::testing::StartsWith("qsw_" + mine.token().id() + "_"));
  v1::CreateTokenResponse no;
  ExpectCode(create(tokens_.alice, v1::ROLE_WORKER, "", &no), grpc::StatusCode::PERMISSION_DENIED,
             "users may create only user tokens");
  ExpectCode(create(tokens_.alice, v1::ROLE_ADMIN, "", &no), grpc::StatusCode::PERMISSION_DENIED,
             "users may create only user tokens");
  ExpectCode(create(tokens_.alice, v1::ROLE_USER, "bob", &no), grpc::StatusCode::PERMISSION_DENIED,
             "for themselves");
  ExpectCode(create(tokens_.admin, v1::ROLE_USER, "bad owner!", &no),
             grpc::StatusCode::INVALID_ARGUMENT, "'owner'");
  ExpectCode(create(tokens_.admin, static_cast<v1::Role>(9), "x", &no),
             grpc::StatusCode::INVALID_ARGUMENT, "'role'");

  // Both of alice's tokens work at once (rotation without downtime).
  grpc::ClientContext lc;
  v1::ListTokensResponse listed;
  ASSERT_TRUE(Tok(mine.secret())->ListTokens(&lc, v1::ListTokensRequest(), &listed).ok());
  ASSERT_EQ(listed.tokens_size(), 2);
  for (const auto& t : listed.tokens()) {
    EXPECT_EQ(t.owner(), "alice");
    EXPECT_TRUE(t.sha256().empty());
  }
  grpc::ClientContext rc;
  v1::RevokeTokenRequest revoke;
  revoke.set_token_id(*TokenIdOf(tokens_.bob));
  v1::RevokeTokenResponse rr;
  ExpectCode(Tok(tokens_.alice)->RevokeToken(&rc, revoke, &rr), grpc::StatusCode::NOT_FOUND,
             "no token");
  grpc::ClientContext ac;
  v1::ListTokensResponse all;
  ASSERT_TRUE(Tok(tokens_.admin)->ListTokens(&ac, v1::ListTokensRequest(), &all).ok());
  EXPECT_EQ(all.tokens_size(), 6);  // the five test tokens and alice's new one
}

TEST_F(AuthTest, UsersSeeAndChangeOnlyTheirOwnSweeps) {
  const std::string mine = Submit(tokens_.alice);
  const std::string theirs = Submit(tokens_.bob);
  auto bob = Exp(tokens_.bob);
  const auto kNotFound = grpc::StatusCode::NOT_FOUND;
  {
    grpc::ClientContext c;
    v1::GetSweepRequest q;
    q.set_sweep_id(mine);
    v1::SweepSummary r;
    ExpectCode(bob->GetSweep(&c, q, &r), kNotFound, absl::StrCat("no sweep '", mine, "'"));
  }
  {
    grpc::ClientContext c;
    v1::ListJobsRequest q;
    q.set_sweep_id(mine);
    v1::ListJobsResponse r;
    ExpectCode(bob->ListJobs(&c, q, &r), kNotFound, "no sweep");
  }
  const std::string job = mine + "-0";
  {
    grpc::ClientContext c;
    v1::GetJobRequest q;
    q.set_job_id(job);
    v1::GetJobResponse r;
    ExpectCode(bob->GetJob(&c, q, &r), kNotFound, absl::StrCat("no job '", job, "'"));
  }
  {
    grpc::ClientContext c;
    v1::GetMetricsRequest q;
    q.set_job_id(job);
    v1::GetMetricsResponse r;
    ExpectCode(bob->GetMetrics(&c, q, &r), kNotFound, "no job");
  }
  {
    grpc::ClientContext c;
    v1::GetReportRequest q;
    q.set_job_id(job);
    q.set_pass_name("transform");
    v1::Report r;
    ExpectCode(bob->GetReport(&c, q, &r), kNotFound, "no job");
  }
  {
    grpc::ClientContext c;
    v1::CancelSweepRequest q;
    q.set_sweep_id(mine);
    v1::CancelResponse r;
    ExpectCode(bob->CancelSweep(&c, q, &r), kNotFound, "no sweep");
  }
  {
    grpc::ClientContext c;
    v1::CancelJobRequest q;
    q.set_job_id(job);
    v1::CancelResponse r;
    ExpectCode(bob->CancelJob(&c, q, &r), kNotFound, "no job");
  }
  {
    grpc::ClientContext c;
    v1::RetryJobsRequest q;
    q.set_sweep_id(mine);
    v1::RetryJobsResponse r;
    ExpectCode(bob->RetryJobs(&c, q, &r), kNotFound, "no sweep");
  }
  {
    grpc::ClientContext c;
    v1::SubmitTransformRequest q;
    q.set_from_job_id(job);
    q.set_config_toml("[passes.report_graph]\n");
    v1::SubmitTransformResponse r;
    ExpectCode(bob->SubmitTransform(&c, q, &r), kNotFound, "no job");
  }
  {
    grpc::ClientContext c;
    v1::WatchSweepRequest q;
    q.set_sweep_id(mine);
    auto reader = bob->WatchSweep(&c, q);
    v1::WatchSweepEvent ev;
    EXPECT_FALSE(reader->Read(&ev));
    ExpectCode(reader->Finish(), kNotFound, "no sweep");
  }
  {
    grpc::ClientContext c;
    v1::DownloadArtifactRequest q;
    q.set_job_id(job);
    q.set_name("best");
    auto reader = bob->DownloadArtifact(&c, q);
    v1::ArtifactChunk ch;
    EXPECT_FALSE(reader->Read(&ch));
    ExpectCode(reader->Finish(), kNotFound, "no job");
  }
  {
    grpc::ClientContext c;
    v1::ListSweepsResponse r;
    ASSERT_TRUE(bob->ListSweeps(&c, v1::ListSweepsRequest(), &r).ok());
    ASSERT_EQ(r.sweeps_size(), 1);
    EXPECT_EQ(r.sweeps(0).sweep().id(), theirs);
  }
  EXPECT_EQ(server_->store().GetJob(job)->state(),
            v1::PENDING);  // nothing changed
  {
    grpc::ClientContext c;
    v1::ListSweepsResponse r;
    ASSERT_TRUE(Exp(tokens_.admin)->ListSweeps(&c, v1::ListSweepsRequest(), &r).ok());
    EXPECT_EQ(r.sweeps_size(), 2);  // admins see everything
  }
}

TEST_F(AuthTest, LeaseIdsNeverReachClients) {
  const std::string id = Submit(tokens_.alice);
  const v1::GrantedLease lease = LeaseOne(tokens_.worker);
  ASSERT_FALSE(lease.lease_id().empty());
  auto alice = Exp(tokens_.alice);
  {
    grpc::ClientContext c;
    v1::ListJobsRequest q;
    q.set_sweep_id(id);
    v1::ListJobsResponse r;
    ASSERT_TRUE(alice->ListJobs(&c, q, &r).ok());
    for (const auto& j : r.jobs()) EXPECT_TRUE(j.lease_id().empty()) << j.id();
  }
  {
    grpc::ClientContext c;
    v1::GetJobRequest q;
    q.set_job_id(lease.job().id());
    v1::GetJobResponse r;
    ASSERT_TRUE(alice->GetJob(&c, q, &r).ok());
    EXPECT_EQ(r.job().lease_epoch(), 1);
    EXPECT_TRUE(r.job().lease_id().empty());
    ASSERT_EQ(r.attempts_size(), 1);
    EXPECT_TRUE(r.attempts(0).lease_id().empty());
  }
  {
    grpc::ClientContext c;
    v1::WatchSweepRequest q;
    q.set_sweep_id(id);
    auto reader = alice->WatchSweep(&c, q);
    v1::WatchSweepEvent ev;
    ASSERT_TRUE(reader->Read(&ev));
    for (const auto& j : ev.jobs()) EXPECT_TRUE(j.lease_id().empty());
    c.TryCancel();
  }
  {
    grpc::ClientContext c;
    v1::ListWorkersResponse r;
    ASSERT_TRUE(alice->ListWorkers(&c, v1::ListWorkersRequest(), &r).ok());
    ASSERT_EQ(r.workers_size(), 1);
    EXPECT_TRUE(r.workers(0).token_id().empty());
  }
}

TEST_F(AuthTest, OnlyTheLeaseHolderUploadsAndFetches) {
  Submit(tokens_.alice);
  const v1::GrantedLease lease = LeaseOne(tokens_.worker);
  ExpectCode(Upload(tokens_.worker, lease, "best", "w", /*with_lease=*/false),
             grpc::StatusCode::INVALID_ARGUMENT, "'lease_id'");
  ExpectCode(Upload(tokens_.worker2, lease, "best", "w"), grpc::StatusCode::PERMISSION_DENIED,
             "another worker token");
  ExpectCode(Upload(tokens_.worker, lease, "../../etc/passwd", "w"),
             grpc::StatusCode::INVALID_ARGUMENT, "'info.name'");
  EXPECT_TRUE(server_->store().ListArtifacts(lease.job().id())->empty());
  ASSERT_TRUE(Upload(tokens_.worker, lease, "best", "weights").ok());
  auto linked = server_->store().FindArtifact(lease.job().id(), "best");
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->attempt(), 1);
  // Fetching content that no job of this token needs is refused, even if the
  // content exists (here: the checkpoint just uploaded).
  grpc::ClientContext c;
  v1::FetchArtifactRequest q;
  q.set_sha256(Sha256Hex("weights"));
  auto reader = Wrk(tokens_.worker)->FetchArtifact(&c, q);
  v1::ArtifactChunk ch;
  EXPECT_FALSE(reader->Read(&ch));
  ExpectCode(reader->Finish(), grpc::StatusCode::PERMISSION_DENIED, "not an input");
}

TEST(ServerSecurityTest, NonLocalPlaintextListenIsRefused) {
  ServerOptions o;
  o.listen = "0.0.0.0:7420";
  auto s = CheckListenSecurity(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--tls-cert"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--insecure-listen"));
  EXPECT_EQ(Server::Start(o, NewInMemoryStore()).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.listen = "10.1.2.3:7420";
  EXPECT_FALSE(CheckListenSecurity(o).ok());
  o.insecure_listen = true;
  EXPECT_TRUE(CheckListenSecurity(o).ok());
  for (const char* local : {"127.0.0.1:0", "localhost:7420", "[::1]:7420", "unix:/tmp/q.sock"}) {
    ServerOptions l;
    l.listen = local;
    EXPECT_TRUE(CheckListenSecurity(l).ok()) << local;
  }
  ServerOptions half;
  half.listen = "127.0.0.1:0";
  half.tls.cert_file = "c.pem";
  EXPECT_FALSE(CheckListenSecurity(half).ok());
}

TEST(ServerSecurityTest, LocalPortAuthenticatesBeforeHandlersAndRefusesPlaintext) {
  auto store = NewInMemoryStore();
  auto tokens = testing::AddTestTokens(*store);
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.coordinator.tick_interval_ms = 0;
  auto server = Server::Start(o, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());
  auto call = [&](const std::string& token) {
    ChannelOptions co;
    co.address = address;
    co.token = token;
    auto ch = MakeChannel(co);
    EXPECT_TRUE(ch.ok());
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ListSweepsResponse r;
    return v1::Experiments::NewStub(*ch)->ListSweeps(&c, v1::ListSweepsRequest(), &r);
  };
  EXPECT_TRUE(call(tokens.alice).ok());
  ExpectCode(call(""), grpc::StatusCode::UNAUTHENTICATED,
             "/qsweep.v1.Experiments/ListSweeps: no bearer token");
  ExpectCode(call(tokens.worker), grpc::StatusCode::PERMISSION_DENIED, "worker token");
  // One connection keeps one identity: a second token on it is refused.
  {
    ChannelOptions co;
    co.address = address;
    auto ch = MakeChannel(co);  // no token of its own: each call brings one
    ASSERT_TRUE(ch.ok());
    auto stub = v1::Experiments::NewStub(*ch);
    auto with = [&](const std::string& token) {
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      c.AddMetadata("authorization", "Bearer " + token);
      v1::ListSweepsResponse r;
      return stub->ListSweeps(&c, v1::ListSweepsRequest(), &r);
    };
    EXPECT_TRUE(with(tokens.alice).ok());
    ExpectCode(with(tokens.bob), grpc::StatusCode::PERMISSION_DENIED, "bound to another token");
    EXPECT_TRUE(with(tokens.alice).ok());
  }
  // Local credentials check the peer's address, not a handshake: a plaintext
  // client on this machine connects, and is authenticated like any other.
  auto plain = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  c.AddMetadata("authorization", "Bearer " + testing::FixedToken('f'));
  v1::ListSweepsResponse r;
  ExpectCode(v1::Experiments::NewStub(plain)->ListSweeps(&c, v1::ListSweepsRequest(), &r),
             grpc::StatusCode::UNAUTHENTICATED, "unknown token");
}

// A CA, a server certificate for 127.0.0.1/localhost and a client
// certificate, made with openssl for this test run.
struct TestPki {
  fs::path dir;
  std::string ca, server_cert, server_key, client_cert, client_key;
};

TestPki MakePki() {
  TestPki p;
  p.dir = TempDir("pki");
  const std::string d = p.dir.string();
  const std::string script =
      absl::StrCat("set -e; cd '", d, "';",
                   "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                   "-days 2 "
                   "-subj /CN=qsweep-test-ca >/dev/null 2>&1;",
                   "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext;",
                   "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
                   "-subj /CN=localhost >/dev/null 2>&1;",
                   "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                   "-CAcreateserial "
                   "-out server.pem -days 2 -extfile san.ext >/dev/null 2>&1;",
                   "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
                   "-subj /CN=gpu-node-1 >/dev/null 2>&1;",
                   "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
                   "-CAcreateserial "
                   "-out client.pem -days 2 >/dev/null 2>&1");
  EXPECT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0) << "openssl failed";
  p.ca = d + "/ca.pem";
  p.server_cert = d + "/server.pem";
  p.server_key = d + "/server.key";
  p.client_cert = d + "/client.pem";
  p.client_key = d + "/client.key";
  return p;
}

TEST(ServerSecurityTest, TlsWithOptionalMutualTlsForWorkers) {
  TestPki pki = MakePki();
  auto store = NewInMemoryStore();
  auto tokens = testing::AddTestTokens(*store);
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.coordinator.tick_interval_ms = 0;
  o.tls.cert_file = pki.server_cert;
  o.tls.key_file = pki.server_key;
  o.tls.client_ca_file = pki.ca;
  o.tls.require_worker_cert = true;
  auto server = Server::Start(o, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("localhost:", (*server)->port());
  auto options = [&](const std::string& token) {
    ChannelOptions co;
    co.address = address;
    co.token = token;
    co.tls_ca_file = pki.ca;
    return co;
  };
  auto deadline = [](grpc::ClientContext& c) {
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  };
  {  // a user over TLS
    grpc::ClientContext c;
    deadline(c);
    v1::ListSweepsResponse r;
    auto ch = MakeChannel(options(tokens.alice));
    ASSERT_TRUE(ch.ok()) << ch.status();
    grpc::Status s = v1::Experiments::NewStub(*ch)->ListSweeps(&c, v1::ListSweepsRequest(), &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  v1::RegisterRequest reg;
  reg.set_device("cpu");
  reg.set_slots(1);
  {  // a worker without a client certificate
    grpc::ClientContext c;
    deadline(c);
    v1::RegisterResponse r;
    auto ch = MakeChannel(options(tokens.worker));
    ASSERT_TRUE(ch.ok());
    ExpectCode(v1::Workers::NewStub(*ch)->Register(&c, reg, &r),
               grpc::StatusCode::PERMISSION_DENIED, "client certificate");
  }
  {  // a worker with one
    grpc::ClientContext c;
    deadline(c);
    v1::RegisterResponse r;
    auto co = options(tokens.worker);
    co.tls_cert_file = pki.client_cert;
    co.tls_key_file = pki.client_key;
    auto ch = MakeChannel(co);
    ASSERT_TRUE(ch.ok()) << ch.status();
    grpc::Status s = v1::Workers::NewStub(*ch)->Register(&c, reg, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  {  // a client that does not trust the server's CA cannot connect
    grpc::ClientContext c;
    deadline(c);
    v1::ListSweepsResponse r;
    auto co = options(tokens.alice);
    co.tls_ca_file = pki.client_cert;  // a certificate, but not the CA
    auto ch = MakeChannel(co);
    ASSERT_TRUE(ch.ok());
    EXPECT_EQ(
        v1::Experiments::NewStub(*ch)->ListSweeps(&c, v1::ListSweepsRequest(), &r).error_code(),
        grpc::StatusCode::UNAVAILABLE);
  }
  fs::remove_all(pki.dir);
}

TEST(ServerSecurityTest, FirstStartWritesAOneTimeAdminToken) {
  fs::path dir = TempDir("bootstrap");
  const std::string path = (dir / "state" / "admin.token").string();
  auto store = NewInMemoryStore();
  Store* raw = store.get();
  ServerOptions o;
  o.listen = "";
  o.coordinator.tick_interval_ms = 0;
  o.admin_token_file = path;
  auto server = Server::Start(o, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE((*server)->wrote_admin_token());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto token = ReadTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  auto record = raw->GetToken(*TokenIdOf(*token));
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->role(), v1::ROLE_ADMIN);
  EXPECT_NE(record->sha256(), *token);  // only the hash is stored
  EXPECT_EQ(record->sha256(), Sha256Hex(*token));
  // It works as an admin token.
  grpc::ClientContext c;
  v1::ListTokensResponse r;
  ASSERT_TRUE(v1::Tokens::NewStub((*server)->InProcessChannel(*token))
                  ->ListTokens(&c, v1::ListTokensRequest(), &r)
                  .ok());
  EXPECT_EQ(r.tokens_size(), 1);
  // A later start with a live admin token writes nothing.
  auto again = BootstrapAdminToken(*raw, (*server)->clock(), path + ".2");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_FALSE(fs::exists(path + ".2"));
  fs::remove_all(dir);
}

// An admin token the operator provides (a Kubernetes Secret mounted as a
// file): stored as a live admin token, nothing minted, the same file again is
// accepted, and a clash with what the store holds is refused, naming the flag.
TEST(ServerSecurityTest, ProvidedAdminTokenFileIsStoredInsteadOfMinting) {
  fs::path dir = TempDir("provided");
  const std::string provided = (dir / "secret" / "token").string();
  const std::string minted = (dir / "state" / "admin.token").string();
  const std::string token = MintToken().secret;
  ASSERT_TRUE(WriteSecretFile(provided, token + "\n").ok());
  chmod(provided.c_str(), 0400);  // a Secret's defaultMode
  auto store = NewInMemoryStore();
  Store* raw = store.get();
  ServerOptions o;
  o.listen = "";
  o.coordinator.tick_interval_ms = 0;
  o.admin_token_file = minted;
  o.provided_admin_token_file = provided;
  auto server = Server::Start(o, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE((*server)->wrote_admin_token());
  EXPECT_FALSE(fs::exists(minted));
  auto record = raw->GetToken(*TokenIdOf(token));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->role(), v1::ROLE_ADMIN);
  EXPECT_EQ(record->sha256(), Sha256Hex(token));
  {
    grpc::ClientContext c;
    v1::ListTokensResponse r;
    ASSERT_TRUE(v1::Tokens::NewStub((*server)->InProcessChannel(token))
                    ->ListTokens(&c, v1::ListTokensRequest(), &r)
                    .ok());
    EXPECT_EQ(r.tokens_size(), 1);
  }
  Clock& clock = (*server)->clock();
  // A restart with the same Secret.
  EXPECT_TRUE(ImportAdminToken(*raw, clock, provided).ok());
  // The same id with another secret.
  const std::string clash = token.substr(0, 17) + std::string(64, '0');
  const std::string clash_file = (dir / "clash").string();
  ASSERT_TRUE(WriteSecretFile(clash_file, clash).ok());
  absl::Status s = ImportAdminToken(*raw, clock, clash_file);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--admin-token-file"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("another secret"));
  // Group read is fine (a Secret in a pod with fsGroup is 0440); others'
  // read or group write is not; a missing file, a malformed token neither.
  chmod(provided.c_str(), 0440);
  EXPECT_TRUE(ImportAdminToken(*raw, clock, provided).ok());
  EXPECT_FALSE(ReadTokenFile(provided).ok());  // the default stays owner-only
  for (mode_t mode : {0644, 0444, 0460}) {
    chmod(provided.c_str(), mode);
    s = ImportAdminToken(*raw, clock, provided);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << std::oct << mode;
    EXPECT_THAT(std::string(s.message()), HasSubstr("chmod 640"));
  }
  EXPECT_EQ(ImportAdminToken(*raw, clock, (dir / "none").string()).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WriteSecretFile(clash_file, "admin").ok());
  EXPECT_THAT(std::string(ImportAdminToken(*raw, clock, clash_file).message()),
              HasSubstr("malformed token"));
  // A provided token that was revoked, or a stored non-admin token's secret.
  ASSERT_TRUE(raw->RevokeToken(*TokenIdOf(token), clock.NowMs()).ok());
  chmod(provided.c_str(), 0600);
  EXPECT_THAT(std::string(ImportAdminToken(*raw, clock, provided).message()), HasSubstr("revoked"));
  testing::TestTokens tokens = testing::AddTestTokens(*raw);
  ASSERT_TRUE(WriteSecretFile(clash_file, tokens.worker).ok());
  EXPECT_THAT(std::string(ImportAdminToken(*raw, clock, clash_file).message()),
              HasSubstr("role other than admin"));
  fs::remove_all(dir);
}

// The flag on the real binary: a bad file stops the server with its reason.
TEST(ServerSecurityTest, ServerBinaryRefusesABadAdminTokenFile) {
  fs::path dir = TempDir("provided-bin");
  fs::path bin = fs::path(QSWEEP_BINARY_DIR) / "qsweep-server";
  if (!fs::exists(bin)) bin = fs::path(QSWEEP_BINARY_DIR) / "server" / "qsweep-server";
  ASSERT_TRUE(fs::exists(bin)) << bin;
  const std::string file = (dir / "token").string();
  ASSERT_TRUE(WriteSecretFile(file, "not-a-token\n").ok());
  const std::string cmd = bin.string() + " --listen 127.0.0.1:0 --db " + (dir / "q.db").string() +
                          " --admin-token-file " + file + " > " + (dir / "err").string() + " 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  std::ifstream err(dir / "err");
  std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("--admin-token-file"));
  EXPECT_THAT(text, HasSubstr("malformed token"));
  EXPECT_FALSE(fs::exists(dir / "admin.token"));
  fs::remove_all(dir);
}

// An operator who lost the first admin token mints another with the server's
// own binary (it needs write access to the database, not a token).
TEST(ServerSecurityTest, IssueAdminTokenFromTheCommandLine) {
  fs::path dir = TempDir("issue");
  const std::string db = (dir / "q.db").string(), file = (dir / "new.token").string();
  fs::path bin = fs::path(QSWEEP_BINARY_DIR) / "qsweep-server";
  if (!fs::exists(bin)) bin = fs::path(QSWEEP_BINARY_DIR) / "server" / "qsweep-server";
  ASSERT_TRUE(fs::exists(bin)) << bin;
  const std::string cmd =
      bin.string() + " --db " + db + " --issue-admin-token " + file + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto token = ReadTokenFile(file);
  ASSERT_TRUE(token.ok()) << token.status();
  auto store = OpenSqliteStore(SqliteStoreOptions(db));
  ASSERT_TRUE(store.ok());
  auto record = (*store)->GetToken(*TokenIdOf(*token));
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->role(), v1::ROLE_ADMIN);
  EXPECT_EQ(record->sha256(), Sha256Hex(*token));
  // A file it cannot write is an error, not a token lost.
  const std::string bad =
      bin.string() + " --db " + db + " --issue-admin-token /proc/qsweep/none.token 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);
  fs::remove_all(dir);
}

TEST(TokenFileTest, RefusesFilesOthersCanRead) {
  fs::path dir = TempDir("files");
  const std::string path = (dir / "token").string();
  const std::string token = testing::FixedToken('b');
  ASSERT_TRUE(WriteSecretFile(path, token + "\n").ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(*ReadTokenFile(path), token);
  chmod(path.c_str(), 0644);
  auto open = ReadTokenFile(path);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("chmod 600"));
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("0644"));
  chmod(path.c_str(), 0600);
  fs::create_symlink(path, dir / "link");
  EXPECT_FALSE(ReadTokenFile((dir / "link").string()).ok());  // links are not followed
  EXPECT_EQ(ReadTokenFile((dir / "none").string()).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteSecretFile(path, "not a token").ok());
  EXPECT_THAT(std::string(ReadTokenFile(path).status().message()), HasSubstr("malformed token"));
  ASSERT_TRUE(WriteSecretFile(path, std::string(5000, 'x')).ok());
  EXPECT_FALSE(ReadTokenFile(path).ok());
  fs::remove_all(dir);
}

TEST(TokenFileTest, MintedTokensAreWellFormedAndDistinct) {
  MintedToken a = MintToken(), b = MintToken();
  EXPECT_NE(a.secret, b.secret);
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(*TokenIdOf(a.secret), a.id);
  EXPECT_EQ(a.secret.size(), 4u + 12 + 1 + 64);
  EXPECT_FALSE(TokenIdOf("qsw_" + std::string(12, 'A') + "_" + std::string(64, '0')).ok());
  EXPECT_TRUE(IsLocalAddress("127.0.0.1:1"));
  EXPECT_TRUE(IsLocalAddress("127.255.0.9:1"));
  EXPECT_FALSE(IsLocalAddress("127.0.0.1.evil.example:1"));
  EXPECT_FALSE(IsLocalAddress("1270.0.0.1:1"));
  EXPECT_FALSE(IsLocalAddress("0.0.0.0:1"));
  EXPECT_FALSE(IsLocalAddress("[::]:1"));
  EXPECT_TRUE(IsLocalAddress("[::1]:1"));
}

TEST(ChannelTest, NonLocalServerNeedsTlsOrInsecure) {
  ChannelOptions o;
  o.address = "gpu-cluster.example:7420";
  auto ch = MakeChannel(o);
  EXPECT_EQ(ch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ch.status().message()), HasSubstr("--tls-ca"));
  o.insecure = true;
  EXPECT_TRUE(MakeChannel(o).ok());
  o.insecure = false;
  o.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(MakeChannel(o).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qsweep
