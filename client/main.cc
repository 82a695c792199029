// qsweep: the command-line client. Torch-free: local training commands are
// handed to the worker binary (qsweep-worker) so that local and service runs
// share one implementation; model and data commands run here.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "client/global_flags.h"
#include "client/model_commands.h"
#include "client/plot.h"
#include "client/slurm_cli.h"
#include "client/worker_exec.h"

#ifdef QSWEEP_HAVE_DATA_CLI
#include "client/data_cli.h"
#endif
#ifdef QSWEEP_HAVE_SERVICE_CLI
#include "client/service_cli.h"
#endif

namespace {

constexpr const char* kUsage = R"(usage: qsweep <command> [args]

Local (no server), like MASE's `ch`:
  train MODEL DATASET [--config F.toml] [flags]   train a model; checkpoints under
                                                  <project-dir>/<project>/software/training_ckpts
  test --load CKPT [DATASET] [flags]              evaluate a checkpoint on the test split
  transform --config F.toml --load CKPT           run quantize/analysis passes on a checkpoint
  checkpoint export CKPT -o model.pt              write a PyTorch-loadable state dict

Models and data:
  plot RUN... --metric M -o FILE.png|svg          curves of local runs (project folders)
  models [--format table|json]                    the model zoo with parameter counts
  model show NAME|FILE.toml [--format table|json] layer table and parameter count
  data fetch jsc | data list | data info NAME     datasets (jsc-synthetic is generated)
  data export NAME --split train|test --format csv -o FILE
  data import FILE.csv --name NAME [--label-column COL]

Service (qsweep-server; --server ADDR or $QSWEEP_SERVER, default 127.0.0.1:7420):
  up [--db FILE] [--local-workers N]              start a coordinator with local workers
  submit SWEEP.toml [--watch]                     submit a sweep (examples/lab1.toml)
  status [SWEEP] | watch SWEEP | workers          progress, live bars, registered workers
  jobs SWEEP [--sort KEY] [--format table|csv|json]
  show JOB | report JOB [--pass NAME]             one trial: config, metrics, pass reports
  cancel SWEEP|JOB | retry SWEEP --failed
  checkpoint get JOB -o model.pt                  the trial's best state dict (hash verified)
  plot SWEEP --metric val_acc_epoch -o curves.png every trial's curve
  transform submit --from JOB --config F.toml     quantize/analyse a trained trial
  token create --role user|worker|admin [--owner U] [--expires 30d] [-o FILE]
  token list [--all] | token revoke ID            bearer tokens (admins: everyone's)

Clusters (deploy/README.md):
  slurm submit --workers N [--partition P] [--gpus-per-worker G] [--time T] [--dry-run]
                                                  a Slurm job array of qsweep-worker

  Every service command authenticates with the token in --token-file FILE,
  $QSWEEP_TOKEN_FILE or ~/.config/qsweep/token (mode 0600); `qsweep up` writes
  its admin token to ~/.local/share/qsweep/admin.token, used when you have none.
  A server on another machine is reached over TLS: --tls-ca FILE or $QSWEEP_TLS_CA.

Run 'qsweep <command> --help' for the flags of a command.
)";

}  // namespace

int main(int argc, char** argv) {
  // `qsweep --server ADDR submit ...`: global flags may precede the command.
  std::vector<std::string> args = qsweep::CommandFirst({argv + 1, argv + argc});
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "-V" || cmd == "--version" || cmd == "version") {
    std::printf("qsweep %s\n", QSWEEP_VERSION);
    return 0;
  }
  if (cmd == "train" || cmd == "test" || cmd == "transform" || cmd == "checkpoint") {
#ifdef QSWEEP_HAVE_SERVICE_CLI
    // `checkpoint get JOB` and `transform submit --from JOB` talk to the server.
    if (!rest.empty() &&
        ((cmd == "checkpoint" && rest[0] == "get") || (cmd == "transform" && rest[0] == "submit")))
      return qsweep::RunServiceCommand(cmd, rest);
#endif
    return qsweep::ExecWorker(argv[0], args);
  }
  if (cmd == "plot") {
    // Local runs are given as folders or metrics.csv files; a first argument
    // that is no file (e.g. sw-1a2b3c4d) is a sweep on the server.
    const std::string first = rest.empty() ? "" : rest[0];
    bool local = rest.empty() || std::filesystem::exists(first) ||
                 first.find('/') != std::string::npos || first.rfind("-", 0) == 0 ||
                 (first.size() > 4 && first.substr(first.size() - 4) == ".csv");
#ifdef QSWEEP_HAVE_SERVICE_CLI
    if (!local) return qsweep::RunServiceCommand(cmd, rest);
#endif
    return qsweep::RunLocalPlotCommand(rest);
  }
  if (cmd == "slurm") return qsweep::RunSlurmCommand(rest, std::cout, std::cerr);
  if (cmd == "models") return qsweep::RunModelsCommand(rest);
  if (cmd == "model") return qsweep::RunModelCommand(rest);
  if (cmd == "data") {
#ifdef QSWEEP_HAVE_DATA_CLI
    return qsweep::RunDataCommand(rest);
#else
    std::fprintf(stderr, "error: this build of qsweep has no data commands\n");
    return 1;
#endif
  }
#ifdef QSWEEP_HAVE_SERVICE_CLI
  return qsweep::RunServiceCommand(cmd, rest);
#else
  std::fprintf(stderr, "error: unknown command '%s' (run 'qsweep --help')\n", cmd.c_str());
  return 2;
#endif
}
