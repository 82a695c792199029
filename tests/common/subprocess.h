// Running a child process from a test with a deadline: its stdout and stderr
// are captured, and a child still running at the deadline is killed (with its
// whole process group) and reported as timed out, so a hang fails the test
// quickly with a clear message instead of stalling until ctest's timeout.
// Header-only, torch-free.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace qsweep::testing {

struct ProcessResult {
  // Exit status; 128 + N when ended by signal N; -1 when it could not start or
  // was killed at the deadline.
  int code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;  // also holds why the process could not start or was killed
};

struct ProcessOptions {
  // The child is killed (SIGKILL to its process group) at this deadline.
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // Extra environment entries "NAME=value", added to (or replacing) ours.
  std::vector<std::string> env;
  // Send stderr to `out` as well (in order), leaving `err` for the helper's
  // notes.
  bool merge_stderr = false;
};

namespace subprocess_internal {

inline std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& x : extra) replaced |= x.substr(0, x.find('=')) == name;
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

}  // namespace subprocess_internal

// Runs argv[0] (looked up on PATH when it has no slash) with `argv`.
inline ProcessResult RunProcess(const std::vector<std::string>& argv,
                                const ProcessOptions& options = {}) {
  ProcessResult r;
  if (argv.empty()) {
    r.err = "RunProcess: empty argv";
    return r;
  }
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, options.merge_stderr ? out_pipe[1] : err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: the deadline kills its children too
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env = subprocess_internal::Environment(options.env);
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.err = "cannot start '" + argv[0] + "': " + std::strerror(rc);
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    const int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[8192];
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (r.timed_out) kill(-pid, SIGKILL);
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  // Output closed: the child is exiting; a grandchild that kept the pipes open
  // past the deadline was killed with the group above.
  while (true) {
    if (waitpid(pid, &status, 0) >= 0) break;
    if (errno != EINTR) break;
  }
  if (r.timed_out) {
    r.code = -1;
    r.err += "\n[test deadline: '" + argv[0] + "' killed after " +
             std::to_string(options.timeout.count()) + " ms]";
  } else if (WIFEXITED(status)) {
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.code = 128 + WTERMSIG(status);
  }
  return r;
}

// Runs `command` with /bin/sh -c (for pipelines and redirections).
inline ProcessResult RunShell(const std::string& command, const ProcessOptions& options = {}) {
  return RunProcess({"/bin/sh", "-c", command}, options);
}

}  // namespace qsweep::testing
