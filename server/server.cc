#include "server/server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/limits.h"
#include "common/secrets.h"
#include "common/status_macros.h"
#include "storage/sqlite_store.h"

namespace qsweep {
namespace {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls.enabled()) {
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    QSWEEP_ASSIGN_OR_RETURN(std::string cert, ReadPemFile(o.tls.cert_file, "--tls-cert"));
    QSWEEP_ASSIGN_OR_RETURN(std::string key, ReadPemFile(o.tls.key_file, "--tls-key"));
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (!o.tls.client_ca_file.empty()) {
      QSWEEP_ASSIGN_OR_RETURN(ssl.pem_root_certs,
                              ReadPemFile(o.tls.client_ca_file, "--tls-client-ca"));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    return grpc::SslServerCredentials(ssl);
  }
  if (IsLocalAddress(o.listen))
    return grpc::experimental::LocalServerCredentials(o.listen.rfind("unix:", 0) == 0 ? UDS
                                                                                      : LOCAL_TCP);
  return grpc::InsecureServerCredentials();  // CheckListenSecurity allowed it
}

}  // namespace

absl::Status CheckListenSecurity(const ServerOptions& o) {
  if (o.tls.cert_file.empty() != o.tls.key_file.empty())
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (!o.tls.client_ca_file.empty() && !o.tls.enabled())
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  if (o.tls.require_worker_cert && o.tls.client_ca_file.empty())
    return absl::InvalidArgumentError("--require-worker-cert needs --tls-client-ca");
  if (o.listen.empty() || o.tls.enabled() || IsLocalAddress(o.listen) || o.insecure_listen)
    return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("refusing to listen on '", o.listen,
                   "' without TLS: other machines could reach it and read tokens in "
                   "transit. Pass "
                   "--tls-cert FILE --tls-key FILE, listen on 127.0.0.1 or unix:PATH, or "
                   "add "
                   "--insecure-listen to accept unencrypted connections anyway"));
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      std::unique_ptr<Store> store, Clock* clock) {
  QSWEEP_RETURN_IF_ERROR(CheckListenSecurity(options));
  std::unique_ptr<Server> server(new Server());
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!options.listen.empty()) {
    QSWEEP_ASSIGN_OR_RETURN(creds, Credentials(options));
  }
  if (!store) {
    QSWEEP_ASSIGN_OR_RETURN(store, OpenSqliteStore(SqliteStoreOptions(options.db_path)));
  }
  server->store_ = std::move(store);
  server->clock_ = clock ? clock : &server->system_clock_;
  Clock& c = *server->clock_;
  if (!options.provided_admin_token_file.empty()) {
    QSWEEP_RETURN_IF_ERROR(ImportAdminToken(*server->store_, c, options.provided_admin_token_file));
  } else if (!options.admin_token_file.empty()) {
    QSWEEP_ASSIGN_OR_RETURN(server->wrote_admin_token_,
                            BootstrapAdminToken(*server->store_, c, options.admin_token_file));
  }
  server->auth_ = std::make_unique<Authenticator>(*server->store_, c);
  server->coordinator_ = std::make_unique<Coordinator>(*server->store_, c, options.coordinator);
  Coordinator& coordinator = *server->coordinator_;
  // A sweep's first watcher asks for a batch: its feed is built after it.
  server->watch_hub_ =
      std::make_unique<WatchHub>([&coordinator] { coordinator.Post([](Scheduler&) {}); });
  coordinator.SetAfterCommit([hub = server->watch_hub_.get()](Scheduler& s) { hub->Publish(s); });
  QSWEEP_RETURN_IF_ERROR(coordinator.Start());
  server->work_pool_ = std::make_unique<WorkPool>(options.work_threads, "qsweep-work");
  server->watch_pool_ = std::make_unique<WorkPool>(options.watch_threads, "qsweep-watch");
  server->experiments_ = std::make_unique<ExperimentServiceImpl>(
      coordinator, *server->store_, *server->auth_, *server->watch_hub_, *server->work_pool_,
      *server->watch_pool_, options.experiments);
  server->workers_ = std::make_unique<WorkerServiceImpl>(coordinator, *server->store_,
                                                         *server->auth_, *server->work_pool_);
  server->tokens_ = std::make_unique<TokenServiceImpl>(*server->store_, c, *server->auth_);

  // grpc.health.v1.Health for probes and `qsweep-server --check`: SERVING
  // while the server runs, NOT_SERVING once it shuts down.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (creds) {
    if (options.tls.enabled() || IsLocalAddress(options.listen))
      creds->SetAuthMetadataProcessor(
          std::make_shared<TokenAuthProcessor>(*server->auth_, options.tls.require_worker_cert));
    builder.AddListeningPort(options.listen, creds, &server->port_);
  }
  builder.RegisterService(server->experiments_.get());
  builder.RegisterService(server->workers_.get());
  builder.RegisterService(server->tokens_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxRequestBytes));  // common/limits.h
  server->grpc_server_ = builder.BuildAndStart();
  const bool unix_socket = options.listen.rfind("unix:", 0) == 0;
  if (!server->grpc_server_ || (!options.listen.empty() && !unix_socket && server->port_ == 0)) {
    server->coordinator_->Stop();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options.listen, "' (address in use or invalid)"));
  }
  return server;
}

Server::~Server() { Shutdown(); }

std::shared_ptr<grpc::Channel> Server::InProcessChannel(const std::string& token) {
  grpc::ChannelArguments args;
  return grpc_server_->experimental().InProcessChannelWithInterceptors(
      args, BearerTokenInterceptors(token));
}

void Server::Shutdown() {
  if (shut_down_ || !grpc_server_) return;
  shut_down_ = true;
  if (auto* health = grpc_server_->GetHealthCheckService()) health->Shutdown();
  coordinator_->RunSync([](Scheduler& s) { s.CloseWaiters(); });
  watch_hub_->Close();  // open WatchSweep streams end (UNAVAILABLE) instead of holding shutdown
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  work_pool_.reset();  // runs what is queued (it may still post to the strand)
  watch_pool_.reset();
  coordinator_->Stop();
}

void Server::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

}  // namespace qsweep
