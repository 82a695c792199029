// Each service command reads its own options: what the CLI sends for a
// command's flags, checked on a recording Experiments service on a loopback
// port (the real server's answers are not needed to see the request).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/service_cli.h"
#include "common/secrets.h"
#include "qsweep/v1/experiments.grpc.pb.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RecordingExperiments final : public v1::Experiments::Service {
 public:
  grpc::Status SubmitSweep(grpc::ServerContext*, const v1::SubmitSweepRequest* req,
                           v1::SubmitSweepResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    sweeps.push_back(*req);
    resp->mutable_sweep()->set_id("sw-1");
    resp->mutable_sweep()->set_num_jobs(1);
    return grpc::Status::OK;
  }
  grpc::Status SubmitTransform(grpc::ServerContext*, const v1::SubmitTransformRequest* req,
                               v1::SubmitTransformResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    transforms.push_back(*req);
    resp->mutable_sweep()->set_id("sw-2");
    resp->mutable_job()->set_id("sw-2-0");
    return grpc::Status::OK;
  }
  std::vector<v1::SubmitSweepRequest> sweeps;
  std::vector<v1::SubmitTransformRequest> transforms;

 private:
  std::mutex mu_;
};

class ServiceCliOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("qsweep_cli_options_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    ASSERT_TRUE(WriteSecretFile((dir_ / "token").string(),
                                "qsw_" + std::string(12, 'a') + "_" + std::string(64, 'a'))
                    .ok());
    std::ofstream(dir_ / "t.toml") << "[passes.report_graph]\n";
    std::ofstream(dir_ / "s.toml") << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n";
  }
  void TearDown() override {
    server_->Shutdown();
    fs::remove_all(dir_);
  }
  int Cli(const std::string& command, std::vector<std::string> args, std::string& out) {
    for (const std::string& a : {std::string("--server"), absl::StrCat("127.0.0.1:", port_),
                                 std::string("--token-file"), (dir_ / "token").string()})
      args.push_back(a);
    std::ostringstream o, e;
    const int code = RunServiceCommand(command, args, o, e);
    out = o.str() + e.str();
    return code;
  }

  fs::path dir_;
  int port_ = 0;
  RecordingExperiments service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(ServiceCliOptionsTest, TransformSubmitSendsItsFineTuneEpochs) {
  const std::string config = (dir_ / "t.toml").string();
  std::string out;
  ASSERT_EQ(Cli("transform",
                {"submit", "--from", "sw-1-3", "--config", config, "--fine-tune-epochs", "3"}, out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("submitted transform job sw-2-0"));
  ASSERT_EQ(Cli("transform", {"submit", "--from", "sw-1-4", "--config", config}, out), 0) << out;
  ASSERT_EQ(service_.transforms.size(), 2u);
  EXPECT_EQ(service_.transforms[0].from_job_id(), "sw-1-3");
  EXPECT_EQ(service_.transforms[0].fine_tune_epochs(), 3);
  EXPECT_EQ(service_.transforms[0].config_toml(), "[passes.report_graph]\n");
  EXPECT_EQ(service_.transforms[1].from_job_id(), "sw-1-4");
  EXPECT_EQ(service_.transforms[1].fine_tune_epochs(), 0);  // the default: no fine-tuning

  // Out of range: refused before anything is sent, naming the flag.
  EXPECT_EQ(
      Cli("transform",
          {"submit", "--from", "sw-1-3", "--config", config, "--fine-tune-epochs", "1001"}, out),
      2);
  EXPECT_THAT(out, HasSubstr("--fine-tune-epochs"));
  EXPECT_EQ(service_.transforms.size(), 2u);
}

TEST_F(ServiceCliOptionsTest, SubmitSendsItsKeyAndName) {
  std::string out;
  ASSERT_EQ(Cli("submit", {(dir_ / "s.toml").string(), "--key", "k1", "--name", "n1"}, out), 0)
      << out;
  ASSERT_EQ(Cli("submit", {(dir_ / "s.toml").string()}, out), 0) << out;
  ASSERT_EQ(service_.sweeps.size(), 2u);
  EXPECT_EQ(service_.sweeps[0].idempotency_key(), "k1");
  EXPECT_EQ(service_.sweeps[0].name(), "n1");
  EXPECT_EQ(service_.sweeps[0].source_name(), "s.toml");
  EXPECT_EQ(service_.sweeps[1].idempotency_key(), "");
  EXPECT_EQ(service_.sweeps[1].name(), "");
}

TEST_F(ServiceCliOptionsTest, AnUnknownCommandOrFlagIsRefused) {
  std::string out;
  EXPECT_EQ(Cli("frobnicate", {}, out), 2);
  EXPECT_THAT(out, HasSubstr("unknown command 'frobnicate'"));
  // A flag of another command is not accepted.
  EXPECT_EQ(Cli("status", {"--fine-tune-epochs", "3"}, out), 2);
  EXPECT_THAT(out, HasSubstr("--fine-tune-epochs"));
}

}  // namespace
}  // namespace qsweep
