// FetchJsc: downloads MASE's JSC file with the `curl` program.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/core/data/dataset.h"
#include "worker/core/data/jsc_loader.h"

extern char** environ;

namespace qsweep {
namespace {

// Runs argv with stderr sent to `log_path`; returns the exit code, or -1
// when the program could not be started.
int RunProgram(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!absl::StripAsciiWhitespace(line).empty()) last = line;
  }
  return std::string(absl::StripAsciiWhitespace(last));
}

std::string CurlHint(int rc) {
  switch (rc) {
    case 6:
      return "could not resolve the host: are you offline?";
    case 7:
      return "could not connect to the server: are you offline?";
    case 28:
      return "the connection timed out: are you offline?";
    case 22:
      return "the server answered with an HTTP error";
    case 35:
    case 60:
      return "TLS/certificate problem";
    default:
      return "download failed";
  }
}

}  // namespace

absl::StatusOr<std::string> FetchJsc(const FetchJscOptions& options) {
  const std::string dir = options.data_dir.empty() ? DefaultDataDir() : options.data_dir;
  std::string url = options.url;
  if (url.empty()) {
    const char* env = std::getenv("QSWEEP_JSC_URL");
    url = env && *env ? env : kJscUrl;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data directory ", dir, ": ", ec.message()));
  }
  const std::string final_path = absl::StrCat(dir, "/", kJscFileName);
  const std::string tmp = absl::StrCat(final_path, ".part.", getpid());
  const std::string log = absl::StrCat(tmp, ".log");
  const int rc = RunProgram({"curl", "-fsSL", "--connect-timeout",
                             absl::StrCat(options.connect_timeout_s), "-o", tmp, url},
                            log);
  const std::string curl_msg = LastLine(log);
  std::filesystem::remove(log, ec);
  if (rc != 0) {
    std::filesystem::remove(tmp, ec);
    if (rc < 0) {
      return absl::FailedPreconditionError(
          "cannot run `curl` to download the JSC file: install curl");
    }
    return absl::UnavailableError(
        absl::StrCat("could not download the JSC file from ", url, ": ", CurlHint(rc),
                     " (curl exit ", rc, curl_msg.empty() ? "" : ": ", curl_msg,
                     "); with internet access retry, or place the file by hand at ", final_path));
  }
  auto rows = VerifyJscHdf5(tmp);
  if (!rows.ok()) {
    std::filesystem::remove(tmp, ec);
    return absl::InvalidArgumentError(
        absl::StrCat("downloaded file from ", url,
                     " is not the expected JSC HDF5 file: ", rows.status().message()));
  }
  std::filesystem::rename(tmp, final_path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("cannot move the download to ", final_path));
  }
  return final_path;
}

}  // namespace qsweep
