#include "client/slurm_cli.h"

#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/slurm_template.h"  // kSlurmWorkerTemplate, generated from the .sbatch

namespace qsweep {
namespace {

// Single-quoted for bash.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Slurm names and times: letters, digits and . _ - : + (no spaces or shell
// characters, since they go into #SBATCH lines).
bool PlainSlurmWord(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != ':' && c != '+')
      return false;
  return true;
}

bool HasNewline(const std::string& s) { return s.find_first_of("\n\r") != std::string::npos; }

}  // namespace

std::string RenderSlurmScript(const SlurmSubmitOptions& o, std::string& error) {
  error.clear();
  if (o.workers < 1 || o.workers > 10000)
    error = "--workers is " + std::to_string(o.workers) + "; allowed: 1 to 10000";
  else if (o.gpus_per_worker < 0 || o.gpus_per_worker > 64)
    error = "--gpus-per-worker is " + std::to_string(o.gpus_per_worker) + "; allowed: 0 to 64";
  else if (o.cpus_per_worker < 1 || o.cpus_per_worker > 1024)
    error = "--cpus-per-worker is " + std::to_string(o.cpus_per_worker) + "; allowed: 1 to 1024";
  else if (!o.partition.empty() && !PlainSlurmWord(o.partition))
    error = "--partition is '" + o.partition + "'; allowed: letters, digits and . _ - : +";
  else if (!o.time.empty() && !PlainSlurmWord(o.time))
    error = "--time is '" + o.time + "'; allowed: a Slurm time such as 30, 4:00:00 or 1-12:00:00";
  else if (o.server.empty())
    error = "--server is required (or $QSWEEP_SERVER): the coordinator host:port the nodes reach";
  else if (o.token_file.empty())
    error =
        "--token-file is required (or $QSWEEP_TOKEN_FILE): a worker token readable on the "
        "nodes (qsweep token create --role worker -o FILE)";
  for (const std::string* s :
       {&o.server, &o.token_file, &o.tls_ca, &o.worker_binary, &o.grace, &o.idle_exit, &o.output})
    if (error.empty() && HasNewline(*s)) error = "an option value contains a line break";
  if (error.empty() && (o.output.empty() || o.output.find(' ') != std::string::npos))
    error = "--output is '" + o.output + "'; allowed: a file pattern without spaces";
  if (!error.empty()) return "";

  std::ostringstream head;
  head << "#SBATCH --job-name=qsweep-worker\n";
  head << "#SBATCH --array=0-" << (o.workers - 1) << "\n";
  if (o.gpus_per_worker > 0) head << "#SBATCH --gres=gpu:" << o.gpus_per_worker << "\n";
  if (!o.partition.empty()) head << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.time.empty()) head << "#SBATCH --time=" << o.time << "\n";
  head << "#SBATCH --cpus-per-task=" << o.cpus_per_worker << "\n"
       << "#SBATCH --requeue\n"
       << "#SBATCH --signal=B:USR1@120\n"
       << "#SBATCH --open-mode=append\n"
       << "#SBATCH --output=" << o.output << "\n";
  std::ostringstream params;
  params << "# --- parameters (qsweep slurm submit) ---\n";
  params << "export QSWEEP_SERVER=" << Quote(o.server) << "\n";
  params << "export QSWEEP_TOKEN_FILE=" << Quote(o.token_file) << "\n";
  if (!o.tls_ca.empty()) params << "export QSWEEP_TLS_CA=" << Quote(o.tls_ca) << "\n";
  if (!o.worker_binary.empty())
    params << "export QSWEEP_WORKER_BIN=" << Quote(o.worker_binary) << "\n";
  params << "export QSWEEP_GRACE=" << Quote(o.grace) << "\n";
  params << "export QSWEEP_IDLE_EXIT=" << Quote(o.idle_exit) << "\n";

  // The template with its #SBATCH lines replaced and the parameters set at
  // its marker line.
  std::istringstream in(kSlurmWorkerTemplate);
  std::ostringstream out;
  std::string line;
  bool head_done = false;
  while (std::getline(in, line)) {
    if (line.rfind("#SBATCH ", 0) == 0) {
      if (!head_done) out << head.str();
      head_done = true;
      continue;
    }
    if (line == "# --- parameters (qsweep slurm submit) ---") {
      out << params.str();
      continue;
    }
    out << line << "\n";
  }
  return out.str();
}

int RunSlurmCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] != "submit") {
    err << "usage: qsweep slurm submit --workers N [--partition P] [--gpus-per-worker G] "
           "[--time T] [--dry-run]\n";
    return 2;
  }
  SlurmSubmitOptions o;
  if (const char* s = std::getenv("QSWEEP_SERVER")) o.server = s;
  if (const char* s = std::getenv("QSWEEP_TOKEN_FILE")) o.token_file = s;
  if (const char* s = std::getenv("QSWEEP_TLS_CA")) o.tls_ca = s;
  bool dry_run = false;
  std::string sbatch = "sbatch";
  CLI::App app{"qsweep slurm submit: a Slurm job array of qsweep workers"};
  app.add_option("--workers", o.workers, "array tasks, one worker each")->required();
  app.add_option("--partition", o.partition, "Slurm partition (default: the site's)");
  app.add_option("--gpus-per-worker", o.gpus_per_worker, "GPUs per task (--gres=gpu:G); 0 = CPU")
      ->capture_default_str();
  app.add_option("--cpus-per-worker", o.cpus_per_worker, "CPUs per task (--cpus-per-task)")
      ->capture_default_str();
  app.add_option("--time", o.time, "time limit per task, e.g. 4:00:00");
  app.add_option("--server", o.server, "coordinator host:port (default: $QSWEEP_SERVER)");
  app.add_option("--token-file", o.token_file,
                 "worker token file readable on the nodes (default: $QSWEEP_TOKEN_FILE)");
  app.add_option("--tls-ca", o.tls_ca, "PEM CA of the server (default: $QSWEEP_TLS_CA)");
  app.add_option("--worker-binary", o.worker_binary, "qsweep-worker on the nodes (default: PATH)");
  app.add_option("--grace", o.grace, "worker --grace")->capture_default_str();
  app.add_option("--idle-exit", o.idle_exit, "worker --idle-exit")->capture_default_str();
  app.add_option("--output", o.output, "sbatch --output pattern")->capture_default_str();
  app.add_option("--sbatch", sbatch, "the sbatch program")->capture_default_str();
  app.add_flag("--dry-run", dry_run, "print the script instead of submitting it");
  std::vector<std::string> rest(args.rbegin(), args.rend() - 1);  // CLI11 wants them reversed
  try {
    app.parse(rest);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      out << app.help();
      return 0;
    }
    err << "error: " << e.what() << "\n";
    return 2;
  }
  std::string error;
  const std::string script = RenderSlurmScript(o, error);
  if (!error.empty()) {
    err << "error: " << error << "\n";
    return 2;
  }
  if (dry_run) {
    out << script;
    return 0;
  }
  // sbatch reads the script from its standard input.
  int fds[2];
  if (pipe(fds) != 0) {
    err << "error: pipe failed\n";
    return 1;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[0]);
    close(fds[1]);
    execlp(sbatch.c_str(), sbatch.c_str(), "--parsable", static_cast<char*>(nullptr));
    std::fprintf(stderr, "error: cannot run '%s': %s\n", sbatch.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(fds[0]);
  size_t done = 0;
  while (done < script.size()) {
    const ssize_t n = write(fds[1], script.data() + done, script.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fds[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    err << "error: sbatch failed (" << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
        << "); run with --dry-run to see the script\n";
    return 1;
  }
  return 0;
}

}  // namespace qsweep
