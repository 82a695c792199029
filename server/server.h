// The coordinator process assembled: store, coordinator (scheduler strand),
// both gRPC services, and the listening port. main.cc only fills options.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/experiment_service_impl.h"
#include "server/worker_service_impl.h"
#include "storage/store.h"

namespace qsweep {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (see Server::port()).
  // "" = no TCP port, in-process channels only. Default: "127.0.0.1:7420".
  std::string listen = "127.0.0.1:7420";
  // SQLite file (":memory:" for a throw-away server). Used when Start() is
  // given no store. Default: "qsweep.db".
  std::string db_path = "qsweep.db";
  CoordinatorOptions coordinator;
  ExperimentServiceOptions experiments;
};

class Server {
 public:
  // Opens the store (unless `store` is given), recovers the scheduler, and
  // starts serving. `clock` is not owned; null = the system clock.
  // UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       std::unique_ptr<Store> store = nullptr,
                                                       Clock* clock = nullptr);
  ~Server();  // Calls Shutdown().

  // The bound TCP port, 0 if none.
  int port() const { return port_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();
  Coordinator& coordinator() { return *coordinator_; }
  Store& store() { return *store_; }

  // Answers waiting long-polls, stops accepting calls, finishes in-flight
  // ones and stops the scheduler. Idempotent.
  void Shutdown();
  // Blocks until Shutdown() is called from another thread.
  void Wait();

 private:
  Server() = default;
  SystemClock system_clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<ExperimentServiceImpl> experiments_;
  std::unique_ptr<WorkerServiceImpl> workers_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace qsweep
