#include "server/local_workers.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/worker_binary.h"

extern char** environ;

namespace qsweep {

std::string FindWorkerBinary() {
  if (const char* env = std::getenv(kWorkerBinaryEnv); env && *env) return env;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& candidate :
         {self.parent_path() / "qsweep-worker",
          self.parent_path().parent_path() / "worker" / "qsweep-worker"}) {
      if (fs::exists(candidate, ec)) return candidate.string();
    }
  }
  return "qsweep-worker";
}

absl::StatusOr<LocalWorkers> LocalWorkers::Start(const LocalWorkersOptions& options) {
  LocalWorkers workers;
  for (int i = 0; i < options.count; ++i) {
    std::vector<std::string> args = {options.worker_binary,
                                     "--server",
                                     options.server_address,
                                     "--device",
                                     "cpu",
                                     "--slots",
                                     std::to_string(options.slots),
                                     "--name",
                                     absl::StrCat("local-", i)};
    if (!options.token_file.empty()) {
      args.push_back("--token-file");
      args.push_back(options.token_file);
    }
    if (!options.log_level.empty()) {
      args.push_back("--log-level");
      args.push_back(options.log_level);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      workers.StopAll();
      return absl::InternalError(
          absl::StrCat("cannot start worker '", options.worker_binary, "': ", std::strerror(rc)));
    }
    workers.pids_.push_back(pid);
  }
  return workers;
}

void LocalWorkers::StopAll() {
  for (pid_t pid : pids_) kill(pid, SIGTERM);
  for (pid_t pid : pids_) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pids_.clear();
}

}  // namespace qsweep
