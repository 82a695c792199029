// The `qsweep` commands that talk to a qsweep-server (torch-free):
//   submit SWEEP.toml [--key K] [--name N] [--watch]
//   status [SWEEP]                     sweeps, or one sweep's counts
//   watch SWEEP                        live progress until the sweep ends
//   jobs SWEEP [--sort KEY] [--asc] [--state S]
//   show JOB                           config, final metrics, attempts, per-epoch table
//   report JOB [--pass NAME]               (default: the transform report)
//   cancel SWEEP|JOB
//   retry SWEEP --failed [--cancelled]
//   checkpoint get JOB [-o FILE] [--name best_state_dict|best|last]
//   plot SWEEP [--metric val_acc_epoch] [--x step|epoch] -o curves.svg|png   (gnuplot)
//   transform submit --from JOB --config FILE [--fine-tune-epochs N] [--watch]
//   workers
//   up [--db FILE] [--listen ADDR] [--local-workers N]   (runs qsweep-server)
// Every command takes --server ADDR (default $QSWEEP_SERVER or
// 127.0.0.1:7420); listings take --format table|csv|json.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace qsweep {

// True for the command names RunServiceCommand handles ("transform" is not
// one: plain `qsweep transform` is the local command).
bool IsServiceCommand(const std::string& command);
// Also true for `transform submit ...`, which goes to the server.
bool IsServiceCommand(const std::string& command, const std::vector<std::string>& args);

// Runs one command; `args` are the words after the command name. Output goes
// to `out`; an error is one line on `err`. Returns 0 on success, 1 on any
// error, 2 for a command-line error.
int RunServiceCommand(const std::string& command, const std::vector<std::string>& args,
                      std::ostream& out, std::ostream& err);

// Same, printing to std::cout / std::cerr.
int RunServiceCommand(const std::string& command, const std::vector<std::string>& args);

}  // namespace qsweep
