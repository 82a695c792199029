// qsweep-worker: runs jobs leased from a qsweep-server. Only fills options.
//   qsweep-worker --server 127.0.0.1:7420 --device cpu --slots 2
//   qsweep-worker --server HOST:7420 --gpus auto --grace 60s --idle-exit 5m
// SIGTERM, SIGUSR1 or SIGINT: stop leasing, hand running jobs back, exit
// within --grace. Exit status: 0 done (stopped with nothing running, or idle
// for --idle-exit), 1 error, 2 bad setup, 75 (EX_TEMPFAIL) work was handed
// back or the grace period ran out: a batch system should requeue it.
// With a local command first (train, test, transform, checkpoint) it runs
// that command instead, so `qsweep train` and a service run share one
// implementation.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#ifdef QSWEEP_HAVE_LOCAL_COMMANDS
#include "worker/local/local_commands.h"
#endif
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log_flag.h"
#include "common/secrets.h"
#include "worker/coordinator_client.h"
#include "worker/core/torch/trainer.h"  // CudaAvailable (torch-free header)
#include "worker/local/local_commands.h"
#include "worker/train_job_runner.h"
#include "worker/worker.h"
#ifdef QSWEEP_WORKER_TEST_HOLD
// Only in the test binary qsweep-worker-held (tests/e2e/CMakeLists.txt).
#include "tests/e2e/held_job_runner.h"
#endif

namespace {
constexpr int kExitHandedBack = 75;  // EX_TEMPFAIL: requeue me
}  // namespace

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
  options.pack = 16;  // the CLI's default: pack compatible trials (Lab 1: 9 per batch size)
  app.add_option("--pack", options.pack,
                 "compatible TRAIN jobs trained together per slot (1 = one job per slot)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--name", options.name, "name shown by `qsweep workers`");
  app.add_option("--work-dir", options.work_dir, "folder for checkpoints of running jobs");
  app.add_option("--data-dir", runner_options.data_dir, "dataset cache folder");
  bool no_resume_states = false;
  app.add_flag("--no-resume-states", no_resume_states,
               "send no per-epoch resume states (a trial handed back or whose worker died then "
               "starts again from scratch)");
#ifdef QSWEEP_WORKER_TEST_HOLD
  std::string resume_every_text = "0";  // the test worker: a state after every epoch
#else
  std::string resume_every_text = "10s";
#endif
  app.add_option("--resume-every", resume_every_text,
                 "send a running trial's resume state at most this often (0 = after every "
                 "epoch); the latest one always goes out before a hand-back")
      ->capture_default_str();
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
  std::string gpus;
  std::string grace_text = "60s";
  std::string idle_text = "0";
  auto* gpus_opt = app.add_option("--gpus", gpus,
                                  "auto: one slot per GPU in CUDA_VISIBLE_DEVICES, slot i on "
                                  "cuda:i (no visible GPU: --slots on cpu)")
                       ->check(CLI::IsMember({"auto"}));
  gpus_opt->excludes("--device");
  app.add_option("--grace", grace_text,
                 "after SIGTERM/SIGUSR1: time to hand running jobs back before exiting "
                 "(e.g. 60s, 2m)")
      ->capture_default_str();
  app.add_option("--idle-exit", idle_text,
                 "exit 0 after this long with nothing to lease (e.g. 5m); 0 = never")
      ->capture_default_str();
  std::string log_level;
  qsweep::log::AddLevelFlag(app, log_level);
  CLI11_PARSE(app, argc, argv);
  namespace log = qsweep::log;
  log::Init("qsweep-worker", *log::ParseLevel(log_level));  // checked by --log-level's IsMember
  runner_options.resume_states = !no_resume_states;
  auto resume_every = qsweep::ParseDuration(resume_every_text);
  if (!resume_every.ok() || *resume_every < 0) {
    log::Error(absl::StrCat("--resume-every is '", resume_every_text,
                            "'; allowed: 0 or a duration such as 10s, 1m"));
    return 2;
  }
  runner_options.resume_interval_ms = *resume_every;
  auto grace = qsweep::ParseDuration(grace_text);
  if (!grace.ok() || *grace <= 0) {
    log::Error(absl::StrCat("--grace is '", grace_text,
                            "'; allowed: a positive duration such as 30s, 2m"));
    return 2;
  }
  auto idle = qsweep::ParseDuration(idle_text);
  if (!idle.ok() || *idle < 0) {
    log::Error(
        absl::StrCat("--idle-exit is '", idle_text, "'; allowed: 0 or a duration such as 5m"));
    return 2;
  }
  options.idle_exit_ms = *idle;
  if (gpus == "auto") {
    auto visible = qsweep::VisibleGpus(std::getenv("CUDA_VISIBLE_DEVICES"));
    if (!visible.ok()) {
      log::Error(absl::StrCat("--gpus auto: ", visible.status().message()));
      return 2;
    }
    if (visible->empty()) {
      log::Warn(absl::StrFormat(
          "--gpus auto: no GPU visible (CUDA_VISIBLE_DEVICES unset, empty or NoDevFiles); running "
          "%d slot(s) on cpu",
          options.slots));
    } else if (!qsweep::CudaAvailable()) {
      // A LibTorch without CUDA (or no driver) on a GPU allocation: still one
      // slot per allocated GPU, on cpu, so that the allocation is used.
      options.slots = static_cast<int>(visible->size());
      log::Warn(absl::StrFormat(
          "--gpus auto: CUDA_VISIBLE_DEVICES=%s but CUDA is not available to this qsweep-worker "
          "(CPU LibTorch or no driver); running %d slot(s) on cpu",
          std::getenv("CUDA_VISIBLE_DEVICES"), options.slots));
    } else {
      options.slots = static_cast<int>(visible->size());
      options.slot_devices = *visible;
      options.device = options.slots == 1 ? visible->front() : "cuda";
      log::Info(absl::StrFormat("--gpus auto: CUDA_VISIBLE_DEVICES=%s -> slots on %s",
                                std::getenv("CUDA_VISIBLE_DEVICES"), absl::StrJoin(*visible, ",")));
    }
  }
  // Group read is allowed: a Kubernetes Secret mounted by subPath in a pod with
  // fsGroup is 0440 (never group write or others).
  auto token = qsweep::ReadTokenFile(qsweep::ResolveTokenPath(token_file),
                                     qsweep::TokenFileAccess::kOwnerAndGroupRead);
  if (!token.ok()) {
    log::Error(absl::StrCat(token.status().message(),
                            " (an admin creates worker tokens with `qsweep token create --role "
                            "worker -o FILE`)"));
    return 2;
  }
  channel.address = server;
  channel.token = *token;
  runner_options.device = options.device == "cuda" ? "cuda:0" : options.device;
  options.log = [](std::string_view line) { log::Info(line); };

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto client = qsweep::NewGrpcCoordinatorClient(channel);
  if (!client.ok()) {
    log::Error(std::string(client.status().message()));
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
  // A signal stops the worker; if Run() has not returned within the grace
  // period, the process exits anyway, asking to be requeued.
  const int64_t grace_ms = *grace;
  std::thread waiter([&worker, signals, grace_ms]() mutable {
    int sig = 0;
    sigwait(&signals, &sig);
    log::Info(
        absl::StrFormat("%s: handing running jobs back (grace %d ms)", strsignal(sig), grace_ms));
    worker.Stop();
    // Engines signal more than once (Slurm: the batch shell forwards the
    // SIGTERM that every process of the job already got): further SIGTERM and
    // SIGUSR1 are ignored; a second SIGINT (Ctrl-C twice) ends the wait.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      struct timespec ts;
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
      const int again = sigtimedwait(&signals, nullptr, &ts);
      if (again == SIGINT) break;
    }
    log::Warn("jobs not handed back within the grace period; exiting");
    _exit(kExitHandedBack);
  });
  waiter.detach();  // a clean Run() return ends the process; a signal ends Run()
  auto status = worker.Run();
  if (!status.ok()) {
    log::Error(status.ToString());
    return 1;
  }
  if (worker.run_end() == qsweep::RunEnd::kHandedBack) {
    log::Info(absl::StrFormat("handed %d job(s) back; exit %d (requeue)", worker.jobs_handed_back(),
                              kExitHandedBack));
    return kExitHandedBack;
  }
  return 0;
}
