// qsweep-server: the coordinator. Only fills options and waits for a signal.
//   qsweep-server --listen 127.0.0.1:7420 --db qsweep.db [--local-workers N] [--data-dir D]
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "server/local_workers.h"
#include "server/server.h"

int main(int argc, char** argv) {
  qsweep::ServerOptions options;
  int local_workers = 0;
  std::string worker_binary;
  std::string port_file;
  CLI::App app{"qsweep coordinator: schedules sweeps onto workers, stores results in SQLite"};
  app.add_option("--listen", options.listen, "host:port to serve on (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")->capture_default_str();
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
  app.add_option("--port-file", port_file, "write the bound port to this file once serving");
  options.experiments.serve_datasets = true;
  bool no_serve_datasets = false;
  app.add_option("--data-dir", options.experiments.data_dir,
                 "folder where the server prepares datasets it serves to workers "
                 "(default: $QSWEEP_DATA_DIR, else ~/.cache/qsweep/datasets)");
  app.add_flag("--no-serve-datasets", no_serve_datasets,
               "do not prepare datasets at submission; each worker prepares its own");
  CLI11_PARSE(app, argc, argv);
  if (no_serve_datasets) options.experiments.serve_datasets = false;

  // Signals are taken by a waiting thread, not a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = qsweep::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "qsweep-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  const std::string address = host + ":" + std::to_string((*server)->port());
  std::fprintf(stderr, "qsweep-server: serving on %s, database %s\n", address.c_str(),
               options.db_path.c_str());
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
    wo.server_address =
        (host == "0.0.0.0" ? "127.0.0.1" : host) + ":" + std::to_string((*server)->port());
    wo.count = local_workers;
    auto started = qsweep::LocalWorkers::Start(wo);
    if (!started.ok()) {
      std::fprintf(stderr, "qsweep-server: %s\n", started.status().ToString().c_str());
      (*server)->Shutdown();
      return 1;
    }
    workers = std::move(*started);
    std::fprintf(stderr, "qsweep-server: started %d local worker(s) (%s)\n", local_workers,
                 wo.worker_binary.c_str());
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "qsweep-server: signal %d, shutting down\n", sig);
  workers.StopAll();  // workers hand their jobs back while the server still answers
  (*server)->Shutdown();
  return 0;
}
