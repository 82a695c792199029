#include "client/worker_exec.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/worker_binary.h"

namespace qsweep {
namespace fs = std::filesystem;

std::string FindWorkerBinary(const char* argv0) {
  if (const char* env = std::getenv(kWorkerBinaryEnv); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) self = fs::absolute(argv0, ec);
  std::vector<fs::path> candidates = {
      self.parent_path() / "qsweep-worker",
      self.parent_path().parent_path() / "worker" / "qsweep-worker"};
  for (const auto& c : candidates)
    if (fs::exists(c, ec)) return c.string();
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      fs::path c = fs::path(p.substr(start, end - start)) / "qsweep-worker";
      if (fs::exists(c, ec)) return c.string();
      start = end + 1;
    }
  }
  return "";
}

int ExecWorker(const char* argv0, const std::vector<std::string>& args) {
  std::string worker = FindWorkerBinary(argv0);
  if (worker.empty()) {
    std::fprintf(stderr,
                 "error: qsweep-worker not found (looked next to qsweep and on PATH; "
                 "set QSWEEP_WORKER_BIN to its path)\n");
    return 1;
  }
  std::vector<char*> cargs;
  cargs.push_back(const_cast<char*>(worker.c_str()));
  for (const auto& a : args) cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  std::fflush(stdout);
  execv(worker.c_str(), cargs.data());
  std::fprintf(stderr, "error: cannot run %s: %s\n", worker.c_str(), std::strerror(errno));
  return 1;
}

}  // namespace qsweep
