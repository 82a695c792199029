// A qsweep server started inside the test process, as the service, limits,
// auth and CLI tests use it: a fake clock the test moves, the scheduler's
// periodic tick off, the fixed test tokens
// (test_tokens.h) in its store, and stubs for alice (Experiments) and the
// worker identity (Workers) over in-process channels.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "server/clock.h"
#include "server/server.h"
#include "storage/store.h"
#include "tests/test_util/test_tokens.h"

namespace qsweep::testing {

// The options the tests start their server with; `listen` = "" serves
// in-process channels only, "127.0.0.1:0" also a loopback port (Server::port()).
inline ServerOptions InProcessServerOptions(const std::string& listen = "",
                                            ExperimentServiceOptions experiments = {}) {
  ServerOptions options;
  options.listen = listen;
  options.coordinator.tick_interval_ms = 0;
  options.experiments = std::move(experiments);
  return options;
}

class InProcessServerTest : public ::testing::Test {
 protected:
  // (Re)starts the server on `store` (a restart first stops the running one).
  void StartServer(std::unique_ptr<Store> store, const std::string& listen = "",
                   ExperimentServiceOptions experiments = {}) {
    server_.reset();
    tokens_ = AddTestTokens(*store);
    auto server = Server::Start(InProcessServerOptions(listen, std::move(experiments)),
                                std::move(store), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    experiments_ = v1::Experiments::NewStub(server_->InProcessChannel(tokens_.alice));
    workers_ = v1::Workers::NewStub(server_->InProcessChannel(tokens_.worker));
  }

  // Submits `toml` as alice; the sweep id ("" and a test failure when refused).
  std::string SubmitToml(const std::string& toml, const std::string& idempotency_key = "") {
    grpc::ClientContext ctx;
    v1::SubmitSweepRequest req;
    req.set_sweep_toml(toml);
    req.set_idempotency_key(idempotency_key);
    v1::SubmitSweepResponse resp;
    grpc::Status s = experiments_->SubmitSweep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.sweep().id();
  }

  // Registers a CPU worker with `slots` slots; its id.
  std::string RegisterWorker(int slots = 1) {
    grpc::ClientContext ctx;
    v1::RegisterRequest req;
    req.set_device("cpu");
    req.set_slots(slots);
    v1::RegisterResponse resp;
    grpc::Status s = workers_->Register(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.worker_id();
  }

  // Leases up to `n` jobs for `worker`.
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

  FakeClock clock_;
  TestTokens tokens_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Experiments::Stub> experiments_;
  std::unique_ptr<v1::Workers::Stub> workers_;
};

}  // namespace qsweep::testing
