// qsweep-worker: runs jobs leased from a qsweep-server. Only fills options.
//   qsweep-worker --server 127.0.0.1:7420 --device cpu --slots 2
// With a local command first (train, test, transform, checkpoint) it runs
// that command instead, so `qsweep train` and a service run share one
// implementation.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <vector>

#ifdef QSWEEP_HAVE_LOCAL_COMMANDS
#include "worker/local/local_commands.h"
#endif
#include "common/secrets.h"
#include "worker/coordinator_client.h"
#include "worker/local/local_commands.h"
#include "worker/train_job_runner.h"
#include "worker/worker.h"
#ifdef QSWEEP_WORKER_TEST_HOLD
// Only in the test binary qsweep-worker-held (tests/e2e/CMakeLists.txt).
#include "tests/e2e/held_job_runner.h"
#endif

int main(int argc, char** argv) {
  // Local commands handed over by the qsweep CLI (train, test, checkpoint
  // export).
  if (argc > 1 && qsweep::IsLocalCommand(argv[1]))
    return qsweep::RunLocalCommand(std::vector<std::string>(argv + 1, argv + argc));
  std::string server = "127.0.0.1:7420";
  qsweep::ChannelOptions channel;
  std::string token_file;
  const char* ca_env = std::getenv("QSWEEP_TLS_CA");
  channel.tls_ca_file = ca_env ? ca_env : "";
  qsweep::WorkerOptions options;
  qsweep::TrainJobRunnerOptions runner_options;
  CLI::App app{"qsweep worker: trains the jobs a qsweep-server leases to it"};
  app.add_option("--server", server, "coordinator address host:port")->capture_default_str();
  app.add_option("--device", options.device, "cpu or cuda:N")
      ->check([](const std::string& d) -> std::string {
        if (d == "cpu" || (d.rfind("cuda:", 0) == 0 && d.size() > 5)) return "";
        return "device must be cpu or cuda:N, got '" + d + "'";
      })
      ->capture_default_str();
  app.add_option("--slots", options.slots, "jobs run at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  options.pack = 8;  // the CLI's default: pack compatible trials
  app.add_option("--pack", options.pack,
                 "compatible TRAIN jobs trained together per slot (1 = one job per slot)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--name", options.name, "name shown by `qsweep workers`");
  app.add_option("--work-dir", options.work_dir, "folder for checkpoints of running jobs");
  app.add_option("--data-dir", runner_options.data_dir, "dataset cache folder");
  app.add_option("--token-file", token_file,
                 "file holding this worker's token, mode 0600 (default: "
                 "$QSWEEP_TOKEN_FILE, "
                 "else ~/.config/qsweep/token)");
  app.add_option("--tls-ca", channel.tls_ca_file,
                 "PEM CA of the server's certificate: connect over TLS "
                 "(default: $QSWEEP_TLS_CA)");
  app.add_option("--tls-cert", channel.tls_cert_file, "PEM client certificate (mutual TLS)");
  app.add_option("--tls-key", channel.tls_key_file, "PEM key of --tls-cert");
  app.add_flag("--insecure", channel.insecure,
               "allow a plaintext connection to a server on another machine");
  CLI11_PARSE(app, argc, argv);
  auto token = qsweep::ReadTokenFile(qsweep::ResolveTokenPath(token_file));
  if (!token.ok()) {
    std::fprintf(stderr,
                 "qsweep-worker: %s (an admin creates worker tokens with `qsweep token "
                 "create --role worker -o FILE`)\n",
                 std::string(token.status().message()).c_str());
    return 2;
  }
  channel.address = server;
  channel.token = *token;
  runner_options.device = options.device;
  options.log = [](std::string_view line) {
    std::fprintf(stderr, "qsweep-worker: %.*s\n", static_cast<int>(line.size()), line.data());
  };

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto client = qsweep::NewGrpcCoordinatorClient(channel);
  if (!client.ok()) {
    std::fprintf(stderr, "qsweep-worker: %s\n", std::string(client.status().message()).c_str());
    return 2;
  }
  qsweep::TrainJobRunner train_runner(runner_options);
#ifdef QSWEEP_WORKER_TEST_HOLD
  qsweep::testing::HeldJobRunner runner(train_runner,
                                        qsweep::testing::HeldJobRunner::DirFromEnvironment());
#else
  qsweep::JobRunner& runner = train_runner;
#endif
  qsweep::Worker worker(**client, runner, options);
  std::thread waiter([&worker, signals]() mutable {
    int sig = 0;
    sigwait(&signals, &sig);
    worker.Stop();
  });
  waiter.detach();  // a clean Run() return ends the process; a signal ends Run()
  auto status = worker.Run();
  if (!status.ok()) {
    std::fprintf(stderr, "qsweep-worker: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
