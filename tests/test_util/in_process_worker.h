// A qsweep server and a worker loop in the test process, as the worker loop,
// cluster and packed-service tests use them: the server on the real clock
// (leases and heartbeats run for real) with the fixed test tokens (test_tokens.h); alice's
// Experiments stub; the worker's CoordinatorClient over an in-process channel; a worker started on
// a thread and stopped at the end of the test.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "storage/store.h"
#include "tests/test_util/test_tokens.h"
#include "worker/coordinator_client.h"
#include "worker/worker.h"

namespace qsweep::testing {

class InProcessWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.listen = "";
    auto store = NewInMemoryStore();
    tokens_ = AddTestTokens(*store);
    auto server = Server::Start(options, std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    experiments_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    client_ = NewGrpcCoordinatorClient(server_->InProcessChannel(tokens_.worker));
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
    if (worker_thread_.joinable()) worker_thread_.join();
  }

  // A quick test worker: `slots` slots, heartbeats every 20 ms, lease waits of
  // `lease_wait_ms`, backoff 1..5 ms, work folder qsweep_<tag>_<pid> in the
  // temporary folder.
  static WorkerOptions QuickWorkerOptions(int slots, const std::string& tag,
                                          int64_t lease_wait_ms = 200) {
    WorkerOptions options;
    options.slots = slots;
    options.heartbeat_interval_ms = 20;
    options.lease_wait_ms = lease_wait_ms;
    options.initial_backoff_ms = 1;
    options.max_backoff_ms = 5;
    options.work_dir =
        (std::filesystem::temp_directory_path() / absl::StrCat("qsweep_", tag, "_", getpid()))
            .string();
    return options;
  }

  // Runs a worker on `client` and `runner` until the test ends.
  void StartWorker(CoordinatorClient& client, JobRunner& runner, const WorkerOptions& options) {
    worker_ = std::make_unique<Worker>(client, runner, options);
    worker_thread_ = std::thread([this] { ASSERT_TRUE(worker_->Run().ok()); });
  }

  // Submits `toml` as alice; the sweep id.
  std::string SubmitToml(const std::string& toml) {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    v1::SubmitSweepResponse resp;
    grpc::Status s = experiments_->SubmitSweep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  // Blocks on WatchSweep (60 s deadline) until the sweep is finished; returns
  // the last event.
  v1::WatchSweepEvent WaitFinished(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchSweepRequest req;
    req.set_sweep_id(id);
    auto reader = experiments_->WatchSweep(&ctx, req);
    v1::WatchSweepEvent event, last;
    while (reader->Read(&event)) last = event;
    EXPECT_TRUE(reader->Finish().ok());
    return last;
  }

  // Watches sweep `id` as alice (300 s deadline), keeping the latest view of
  // every job, until `done` says so or, without `done`, the sweep has
  // finished; returns that view.
  std::map<std::string, v1::Job> WatchUntil(
      const std::string& id,
      const std::function<bool(const std::map<std::string, v1::Job>&)>& done = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    v1::WatchSweepRequest req;
    req.set_sweep_id(id);
    auto reader = experiments_->WatchSweep(&ctx, req);
    v1::WatchSweepEvent event;
    std::map<std::string, v1::Job> jobs;
    while (reader->Read(&event)) {
      for (const auto& j : event.jobs()) jobs[j.id()] = j;
      if (done && done(jobs)) {
        ctx.TryCancel();
        break;
      }
    }
    reader->Finish().IgnoreError();
    return jobs;
  }

  TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<Worker> worker_;
  std::thread worker_thread_;
};

}  // namespace qsweep::testing
