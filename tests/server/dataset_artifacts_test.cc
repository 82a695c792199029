// Datasets served as artifacts: ServeDatasets prepares each distinct request
// once and stores its file once; the Experiments service records the hash in
// every job and rejects a sweep whose dataset the server cannot prepare.
#include "server/dataset_artifacts.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sha256.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/server.h"
#include "storage/sqlite_store.h"
#include "tests/test_util/test_tokens.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using json = nlohmann::json;

json Config(const std::string& dataset, int64_t rows, int64_t seed, double lr = 1e-3) {
  return json{{"model", "jsc-tiny"},
              {"dataset", dataset},
              {"synthetic_rows", rows},
              {"synthetic_seed", seed},
              {"learning_rate", lr}};
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class DatasetArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsweep_dsart_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    options_.data_dir = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  DatasetServeOptions options_;
  std::unique_ptr<Store> store_ = NewInMemoryStore();
};

TEST_F(DatasetArtifactsTest, IdenticalRequestsAreStoredOnce) {
  auto first =
      ServeDatasets({Config("jsc-synthetic", 300, 1, 1e-3), Config("jsc-synthetic", 300, 1, 1e-2)},
                    *store_, options_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->distinct, 1);
  EXPECT_EQ(first->stored, 1);
  ASSERT_EQ(first->sha256.size(), 2u);
  EXPECT_EQ(first->sha256[0], first->sha256[1]);
  // The artifact is the prepared file, byte for byte, under its own hash.
  auto bytes = store_->GetArtifactBytes(first->sha256[0]);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(Sha256Hex(*bytes), first->sha256[0]);
  EXPECT_EQ(*bytes, ReadFile(dir_ / "jsc-synthetic-r300-s1.qsds"));

  auto again = ServeDatasets({Config("jsc-synthetic", 300, 1)}, *store_, options_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->stored, 0);
  EXPECT_EQ(again->sha256[0], first->sha256[0]);

  auto other = ServeDatasets({Config("jsc-synthetic", 300, 1), Config("jsc-synthetic", 300, 2)},
                             *store_, options_);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->distinct, 2);
  EXPECT_EQ(other->stored, 1);
  EXPECT_NE(other->sha256[0], other->sha256[1]);
}

TEST_F(DatasetArtifactsTest, SqliteStoresTheDatasetOnceAcrossReopen) {
  const std::string db = (dir_ / "q.db").string();
  std::string sha;
  for (int round = 0; round < 2; ++round) {
    fs::create_directories(dir_);
    auto store = OpenSqliteStore(SqliteStoreOptions(db));
    ASSERT_TRUE(store.ok()) << store.status();
    auto served = ServeDatasets({Config("jsc-synthetic", 250, 4)}, **store, options_);
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(served->stored, round == 0 ? 1 : 0) << "round " << round;
    if (round == 1) {
      EXPECT_EQ(served->sha256[0], sha);
    }
    sha = served->sha256[0];
    auto bytes = (*store)->GetArtifactBytes(sha);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(Sha256Hex(*bytes), sha);
  }
}

TEST_F(DatasetArtifactsTest, MissingDataNamesTheDataset) {
  auto served = ServeDatasets({Config("jsc", 0, 0)}, *store_, options_);
  ASSERT_FALSE(served.ok());
  EXPECT_EQ(served.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(served.status().message(), HasSubstr("dataset 'jsc'"));
  EXPECT_THAT(served.status().message(), HasSubstr("cannot be prepared on the server"));

  auto unknown = ServeDatasets({Config("no-such-set", 0, 0)}, *store_, options_);
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("dataset 'no-such-set'"));

  auto bad = ServeDatasets({json{{"model", "jsc-tiny"}}}, *store_, options_);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetArtifactsTest, SubmitRecordsTheHashInEveryJob) {
  ServerOptions options;
  options.listen = "";
  options.coordinator.tick_interval_ms = 0;
  options.experiments.serve_datasets = true;
  options.experiments.data_dir = dir_.string();
  auto store = NewInMemoryStore();
  const auto tokens = testing::AddTestTokens(*store);
  auto server = Server::Start(options, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  auto experiments = v1::Experiments::NewStub((*server)->InProcessChannel(tokens.alice));
  auto workers = v1::Workers::NewStub((*server)->InProcessChannel(tokens.worker));

  v1::SubmitSweepRequest req;
  req.set_sweep_toml(R"(
model = "jsc-tiny"
dataset = "jsc-synthetic"
synthetic_rows = 400
[sweep.grid]
learning_rate = [1e-3, 1e-2]
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
)");
  v1::SubmitSweepResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = experiments->SubmitSweep(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  const std::string expected = Sha256Hex(ReadFile(dir_ / "jsc-synthetic-r400-s0.qsds"));
  v1::ListJobsRequest list;
  list.set_sweep_id(resp.sweep().id());
  v1::ListJobsResponse jobs;
  grpc::ClientContext list_ctx;
  ASSERT_TRUE(experiments->ListJobs(&list_ctx, list, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 4);  // 2 TRAIN + 2 TRANSFORM
  for (const auto& j : jobs.jobs()) EXPECT_EQ(j.dataset_sha256(), expected) << j.id();

  // A worker that leased one of its jobs can fetch it with the artifact stream.
  v1::RegisterRequest reg;
  reg.set_device("cpu");
  reg.set_slots(1);
  v1::RegisterResponse registered;
  grpc::ClientContext reg_ctx;
  ASSERT_TRUE(workers->Register(&reg_ctx, reg, &registered).ok());
  v1::LeaseRequest lease;
  lease.set_worker_id(registered.worker_id());
  lease.set_max_jobs(1);
  v1::LeaseResponse leased;
  grpc::ClientContext lease_ctx;
  ASSERT_TRUE(workers->Lease(&lease_ctx, lease, &leased).ok());
  ASSERT_EQ(leased.leases_size(), 1);
  grpc::ClientContext fetch_ctx;
  v1::FetchArtifactRequest fetch;
  fetch.set_sha256(expected);
  auto reader = workers->FetchArtifact(&fetch_ctx, fetch);
  std::string bytes;
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) bytes += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(Sha256Hex(bytes), expected);

  v1::SubmitSweepRequest bad;
  bad.set_sweep_toml("model = \"jsc-tiny\"\ndataset = \"jsc\"\n");
  grpc::ClientContext bad_ctx;
  s = experiments->SubmitSweep(&bad_ctx, bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("dataset 'jsc'"));
  (*server)->Shutdown();
}

}  // namespace
}  // namespace qsweep
