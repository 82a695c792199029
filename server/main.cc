// qsweep-server: the coordinator. Only fills options and waits for a signal.
//   qsweep-server --listen 127.0.0.1:7420 --db qsweep.db [--local-workers N]
//   [--data-dir D]
//                 [--tls-cert F --tls-key F [--tls-client-ca F
//                 [--require-worker-cert]]]
//   qsweep-server --check [--listen ADDR] [--tls-ca F]: exit 0 when a server
//   at ADDR answers the gRPC health check SERVING (for scripts and probes).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/channel.h"
#include "common/log_flag.h"
#include "common/secrets.h"
#include "server/health.h"
#include "server/local_workers.h"
#include "server/server.h"
#include "server/tokens.h"
#include "storage/sqlite_store.h"

namespace {

// The folder for the server's own secrets: --state-dir, else the database's
// folder; "" for an in-memory database without --state-dir.
std::string StateDir(const std::string& flag, const std::string& db_path) {
  if (!flag.empty()) return flag;
  if (db_path == ":memory:") return "";
  std::filesystem::path dir = std::filesystem::absolute(db_path).parent_path();
  return dir.string();
}

// `qsweep-server --check`: 0 SERVING, 1 otherwise (with the reason).
int Check(const std::string& listen, const std::string& tls_ca) {
  qsweep::ChannelOptions o;
  o.address = listen;
  // A wildcard listen address is checked over loopback.
  for (const std::string any : {"0.0.0.0:", "[::]:"})
    if (listen.rfind(any, 0) == 0)
      o.address = (any == "[::]:" ? "[::1]:" : "127.0.0.1:") + listen.substr(any.size());
  o.tls_ca_file = tls_ca;
  auto channel = qsweep::MakeChannel(o);
  if (!channel.ok()) {
    std::fprintf(stderr, "qsweep-server --check: %s\n",
                 std::string(channel.status().message()).c_str());
    return 1;
  }
  auto status = qsweep::CheckHealth(*channel, "", 5000);
  if (!status.ok()) {
    std::fprintf(stderr, "qsweep-server --check: %s: %s\n", o.address.c_str(),
                 std::string(status.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", qsweep::ServingStatusName(*status).c_str());
  return *status == qsweep::ServingStatus::kServing ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  qsweep::ServerOptions options;
  int local_workers = 0;
  std::string worker_binary;
  std::string port_file;
  std::string state_dir;
  std::string issue_admin_token;
  CLI::App app{
      "qsweep coordinator: schedules sweeps onto workers, stores "
      "results in SQLite"};
  app.add_option("--listen", options.listen,
                 "host:port or unix:PATH to serve on (port 0 = any free port); "
                 "without TLS only "
                 "127.0.0.1, ::1, localhost or unix: are allowed")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "folder for admin.token (written once, at first start) and "
                 "local-worker.token "
                 "(default: the database's folder)");
  app.add_option("--tls-cert", options.tls.cert_file, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", options.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", options.tls.client_ca_file,
                 "PEM CA of client certificates (mutual TLS)");
  app.add_flag("--require-worker-cert", options.tls.require_worker_cert,
               "accept worker tokens only with a client certificate from "
               "--tls-client-ca");
  app.add_flag("--insecure-listen", options.insecure_listen,
               "allow a non-local --listen without TLS (tokens cross the "
               "network in clear)");
  app.add_option("--local-workers", local_workers, "start N local CPU workers")
      ->check(CLI::Range(0, 256));
  app.add_option("--worker-binary", worker_binary, "qsweep-worker to start for local workers");
  app.add_option("--lease-ttl-ms", options.coordinator.scheduler.lease_ttl_ms,
                 "lease lifetime without heartbeat")
      ->check(CLI::Range(int64_t{1000}, int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--heartbeat-ms", options.coordinator.scheduler.heartbeat_interval_ms,
                 "heartbeat period asked of workers")
      ->check(CLI::Range(int64_t{100}, int64_t{600000}))
      ->capture_default_str();
  app.add_option("--max-expiries", options.coordinator.scheduler.max_expiries,
                 "expired leases tolerated per job before it is FAILED")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  app.add_option("--max-batch", options.coordinator.max_batch,
                 "group commit: at most this many calls share one store transaction "
                 "(1 = one transaction per call)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--work-threads", options.work_threads,
                 "threads for slow work off the gRPC threads and the scheduler: sweep "
                 "expansion, dataset preparation, artifact reads and upload hashes")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--watch-threads", options.watch_threads, "threads that build WatchSweep events")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  options.experiments.serve_datasets = true;
  bool no_serve_datasets = false;
  app.add_option("--data-dir", options.experiments.data_dir,
                 "folder where the server prepares datasets it serves to workers "
                 "(default: $QSWEEP_DATA_DIR, else ~/.cache/qsweep/datasets)");
  app.add_flag("--no-serve-datasets", no_serve_datasets,
               "do not prepare datasets at submission; each worker prepares its own");
  std::string log_level;
  qsweep::log::AddLevelFlag(app, log_level);
  bool check = false;
  std::string check_ca;
  const char* ca_env = std::getenv("QSWEEP_TLS_CA");
  check_ca = ca_env ? ca_env : "";
  app.add_flag("--check", check,
               "do not serve: ask the server at --listen for its gRPC health (exit 0 when "
               "SERVING, 1 otherwise)");
  app.add_option("--tls-ca", check_ca,
                 "with --check: PEM CA of the server's certificate (default: $QSWEEP_TLS_CA)");
  app.add_option(
      "--admin-token-file", options.provided_admin_token_file,
      "an admin token you provide (file with qsw_<id>_<secret>, mode 0600/0400/0640/0440, "
      "e.g. a Kubernetes Secret): stored as a live admin token at start; none is "
      "minted into the state folder");
  app.add_option("--issue-admin-token", issue_admin_token,
                 "write a new admin token to this file (mode 0600) and exit: for an operator who "
                 "lost the first one (needs write access to --db)");
  CLI11_PARSE(app, argc, argv);
  if (check) return Check(options.listen, check_ca);
  namespace log = qsweep::log;
  log::Init("qsweep-server", *log::ParseLevel(log_level));  // checked by --log-level's IsMember
  if (!issue_admin_token.empty()) {
    auto store = qsweep::OpenSqliteStore(qsweep::SqliteStoreOptions(options.db_path));
    qsweep::SystemClock clock;
    auto issued = store.ok()
                      ? qsweep::IssueToken(**store, clock, qsweep::v1::ROLE_ADMIN, "admin",
                                           "issued by qsweep-server --issue-admin-token", 0, "")
                      : absl::StatusOr<qsweep::IssuedToken>(store.status());
    absl::Status written = issued.ok()
                               ? qsweep::WriteSecretFile(issue_admin_token, issued->secret + "\n")
                               : issued.status();
    if (!written.ok()) {
      std::fprintf(stderr, "qsweep-server: %s\n", written.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "qsweep-server: wrote admin token %s to %s (mode 0600)\n",
                 issued->record.id().c_str(), issue_admin_token.c_str());
    return 0;
  }
  if (no_serve_datasets) options.experiments.serve_datasets = false;
  state_dir = StateDir(state_dir, options.db_path);
  if (!state_dir.empty()) options.admin_token_file = state_dir + "/admin.token";
  if (local_workers > 0 && options.tls.enabled()) {
    log::Error(
        "--local-workers is for the local default; with TLS start workers yourself "
        "(qsweep-worker --tls-ca ... --token-file ...)");
    return 2;
  }
  if (local_workers > 0 && state_dir.empty()) {
    log::Error(
        "--local-workers with an in-memory --db needs --state-dir for the workers' token "
        "file");
    return 2;
  }

  // Signals are taken by a waiting thread, not a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = qsweep::Server::Start(options);
  if (!server.ok()) {
    log::Error(server.status().ToString());
    return 1;
  }
  const bool unix_socket = options.listen.rfind("unix:", 0) == 0;
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  const std::string address =
      unix_socket ? options.listen : host + ":" + std::to_string((*server)->port());
  const bool insecure = !options.tls.enabled() && !qsweep::IsLocalAddress(options.listen);
  (insecure ? log::Warn
            : log::Info)(absl::StrCat("serving on ", address, ", database ", options.db_path, "; ",
                                      options.tls.enabled() ? "TLS"
                                      : insecure ? "INSECURE: plaintext, --insecure-listen"
                                                 : "local connections only"));
  if ((*server)->wrote_admin_token())
    log::Info(absl::StrCat("first start: wrote a one-time admin token to ",
                           options.admin_token_file,
                           " (mode 0600); use it with --token-file or copy it to "
                           "~/.config/qsweep/token, then create user tokens with `qsweep token "
                           "create`"));
  // The address this state dir's server answers on: the CLI uses the state
  // dir's admin token for exactly this address (see client Connect), even
  // when the user's own token file belongs to another server.
  const std::string address_file = state_dir.empty() ? "" : state_dir + "/listen.address";
  if (!address_file.empty() && qsweep::IsLocalAddress(address)) {
    std::FILE* f = std::fopen(address_file.c_str(), "w");
    if (f) {
      std::fprintf(f, "%s\n", address.c_str());
      std::fclose(f);
    }
  }
  if (!port_file.empty()) {
    std::FILE* f = std::fopen(port_file.c_str(), "w");
    if (f) {
      std::fprintf(f, "%d\n", (*server)->port());
      std::fclose(f);
    }
  }
  qsweep::LocalWorkers workers;
  if (local_workers > 0) {
    qsweep::LocalWorkersOptions wo;
    wo.worker_binary = worker_binary.empty() ? qsweep::FindWorkerBinary() : worker_binary;
    wo.server_address = unix_socket ? options.listen
                                    : (host == "0.0.0.0" ? "127.0.0.1" : host) + ":" +
                                          std::to_string((*server)->port());
    wo.count = local_workers;
    wo.log_level = log_level;  // the workers log at the server's level
    wo.token_file = state_dir + "/local-worker.token";
    auto token =
        qsweep::IssueLocalWorkerToken((*server)->store(), (*server)->clock(), wo.token_file);
    auto started =
        token.ok() ? qsweep::LocalWorkers::Start(wo) : absl::StatusOr<qsweep::LocalWorkers>(token);
    if (!started.ok()) {
      log::Error(started.status().ToString());
      (*server)->Shutdown();
      return 1;
    }
    workers = std::move(*started);
    log::Info(absl::StrFormat("started %d local worker(s) (%s)", local_workers, wo.worker_binary));
  }
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info(absl::StrFormat("signal %d, shutting down", sig));
  workers.StopAll();  // workers hand their jobs back while the server still answers
  (*server)->Shutdown();
  if (!address_file.empty()) std::remove(address_file.c_str());
  return 0;
}
