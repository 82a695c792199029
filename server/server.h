// The coordinator process assembled: store, coordinator (scheduler strand),
// authentication, the gRPC services, and the listening port. main.cc only
// fills options.
//
// Transport security follows the address (see ServerOptions::listen):
//   --tls-cert/--tls-key given  -> TLS (and mutual TLS with --tls-client-ca)
//   unix:PATH, 127.x, ::1,      -> gRPC local credentials: only processes on
//   localhost                      this machine can connect
//   anything else               -> refused, unless insecure_listen
// Every call is authenticated with a bearer token (server/auth.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/experiment_service_impl.h"
#include "server/sweep_watch.h"
#include "server/tokens.h"
#include "server/work_pool.h"
#include "server/worker_service_impl.h"
#include "storage/store.h"

namespace qsweep {

struct TlsOptions {
  // PEM certificate chain and private key of the server. Both or neither.
  std::string cert_file;
  std::string key_file;
  // PEM CA of client certificates. When set, clients may present a
  // certificate, which must then verify against it. Default: "" = none.
  std::string client_ca_file;
  // With client_ca_file: worker tokens are accepted only on connections whose
  // client certificate verified. Default: false.
  bool require_worker_cert = false;

  bool enabled() const { return !cert_file.empty(); }
};

struct ServerOptions {
  // host:port or unix:PATH to listen on; port 0 picks a free port (see
  // Server::port()). "" = no listening port, in-process channels only.
  // Default: "127.0.0.1:7420".
  std::string listen = "127.0.0.1:7420";
  // SQLite file (":memory:" for a throw-away server). Used when Start() is
  // given no store. Default: "qsweep.db".
  std::string db_path = "qsweep.db";
  TlsOptions tls;
  // Accept plaintext connections on a non-local address (tokens cross the
  // network in clear). Default: false.
  bool insecure_listen = false;
  // Where the one-time admin token is written at first start (mode 0600).
  // Default: "" = no bootstrap token (tests create tokens in the store).
  std::string admin_token_file;
  // An admin token the operator provides (a file holding qsw_<id>_<secret>,
  // mode 0600/0400/0640/0440, e.g. a Kubernetes Secret): stored as a live admin token at
  // start (ImportAdminToken), and no token is minted into admin_token_file.
  // Default: "" = none.
  std::string provided_admin_token_file;
  CoordinatorOptions coordinator;
  ExperimentServiceOptions experiments;
  // Threads for slow work (sweep expansion, dataset preparation, artifact
  // reads, upload hashes) and for building WatchSweep events. Default: 4, 2.
  int work_threads = 4;
  int watch_threads = 2;
};

// OK if `options` may be served: a listen address and the security for it.
// INVALID_ARGUMENT saying which flag to add otherwise.
absl::Status CheckListenSecurity(const ServerOptions& options);

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
  // True if Start() wrote a new admin token to options.admin_token_file.
  bool wrote_admin_token() const { return wrote_admin_token_; }
  // An in-process channel; its calls are authenticated by their metadata
  // (pass BearerTokenInterceptors() from common/channel.h to add a token).
  std::shared_ptr<grpc::Channel> InProcessChannel(const std::string& token = "");
  Coordinator& coordinator() { return *coordinator_; }
  Store& store() { return *store_; }
  Clock& clock() { return *clock_; }
  Authenticator& authenticator() { return *auth_; }
  // UploadArtifact streams being received now (counted as they open).
  int32_t uploads_in_progress() const { return workers_->uploads_in_progress(); }
  // WatchSweep's feeds and watchers.
  WatchHub& watch_hub() { return *watch_hub_; }
  // The pool that runs slow work.
  WorkPool& work_pool() { return *work_pool_; }

  // Answers waiting long-polls, stops accepting calls, finishes in-flight
  // ones and stops the scheduler. Idempotent.
  void Shutdown();
  // Blocks until Shutdown() is called from another thread.
  void Wait();

 private:
  Server() = default;
  SystemClock system_clock_;
  Clock* clock_ = nullptr;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Coordinator> coordinator_;
  // Destroyed before the coordinator (declared after it): their threads
  // finish the tasks still queued, which may post to the coordinator.
  std::unique_ptr<WatchHub> watch_hub_;
  std::unique_ptr<WorkPool> work_pool_;
  std::unique_ptr<WorkPool> watch_pool_;
  std::unique_ptr<ExperimentServiceImpl> experiments_;
  std::unique_ptr<WorkerServiceImpl> workers_;
  std::unique_ptr<TokenServiceImpl> tokens_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool wrote_admin_token_ = false;
  bool shut_down_ = false;
};

}  // namespace qsweep
