// `qsweep slurm submit`: renders deploy/slurm/qsweep-worker.sbatch (compiled
// in) for a job array of workers and submits it with sbatch, or prints it.
//   qsweep slurm submit --workers N [--partition P] [--gpus-per-worker G]
//                       [--time T] [--server ADDR] [--token-file F] [--dry-run]
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace qsweep {

struct SlurmSubmitOptions {
  int workers = 1;
  std::string partition;      // "" = the site's default partition
  int gpus_per_worker = 1;    // 0 = no --gres (CPU workers)
  int cpus_per_worker = 4;    // --cpus-per-task
  std::string time;           // Slurm time limit, e.g. "4:00:00"; "" = the default
  std::string server;         // coordinator address, required
  std::string token_file;     // worker token file, required
  std::string tls_ca;         // optional
  std::string worker_binary;  // "" = qsweep-worker on PATH
  std::string grace = "60s";
  std::string idle_exit = "5m";
  std::string output = "qsweep-worker-%A_%a.log";
};

// The sbatch script for `o`: the template's #SBATCH lines replaced by ones
// from `o`, and its parameters set. An error text (naming the option and
// what it allows) in `error` when an option is invalid.
std::string RenderSlurmScript(const SlurmSubmitOptions& o, std::string& error);

// `qsweep slurm ...`; `args` follow "slurm". 0 ok, 1 error, 2 usage error.
int RunSlurmCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace qsweep
