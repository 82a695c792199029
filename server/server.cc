#include "server/server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "storage/sqlite_store.h"

namespace qsweep {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      std::unique_ptr<Store> store, Clock* clock) {
  std::unique_ptr<Server> server(new Server());
  if (!store) {
    QSWEEP_ASSIGN_OR_RETURN(store, OpenSqliteStore(SqliteStoreOptions(options.db_path)));
  }
  server->store_ = std::move(store);
  Clock& c = clock ? *clock : server->system_clock_;
  server->coordinator_ = std::make_unique<Coordinator>(*server->store_, c, options.coordinator);
  QSWEEP_RETURN_IF_ERROR(server->coordinator_->Start());
  server->experiments_ = std::make_unique<ExperimentServiceImpl>(
      *server->coordinator_, *server->store_, options.experiments);
  server->workers_ = std::make_unique<WorkerServiceImpl>(*server->coordinator_, *server->store_);

  grpc::ServerBuilder builder;
  if (!options.listen.empty())
    builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->experiments_.get());
  builder.RegisterService(server->workers_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxRequestBytes));  // common/limits.h
  server->grpc_server_ = builder.BuildAndStart();
  if (!server->grpc_server_ || (!options.listen.empty() && server->port_ == 0)) {
    server->coordinator_->Stop();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options.listen, "' (address in use or invalid)"));
  }
  return server;
}

Server::~Server() { Shutdown(); }

std::shared_ptr<grpc::Channel> Server::InProcessChannel() {
  grpc::ChannelArguments args;
  return grpc_server_->InProcessChannel(args);
}

void Server::Shutdown() {
  if (shut_down_ || !grpc_server_) return;
  shut_down_ = true;
  coordinator_->RunSync([](Scheduler& s) { s.CloseWaiters(); });
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  coordinator_->Stop();
}

void Server::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

}  // namespace qsweep
