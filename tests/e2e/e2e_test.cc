// End to end with real processes on loopback: qsweep-server (port 0) with two
// local qsweep-worker processes runs examples/lab1-small.toml (9 trials on a
// small synthetic set), and the qsweep CLI queries the results as JSON. Every
// child process runs under a deadline (tests/common/subprocess.h), and the
// tests wait on explicit events (log lines, a FIFO, process exit), never on
// the speed of a job.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "client/service_cli.h"
#include "common/channel.h"
#include "common/secrets.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "storage/sqlite_store.h"
#include "tests/common/subprocess.h"

extern char** environ;

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using CliResult = ::qsweep::testing::ProcessResult;

// Deadlines: a quick query, a whole sweep on this machine, and starting up.
constexpr milliseconds kQuick = seconds(60);
constexpr milliseconds kSweep = seconds(300);
constexpr milliseconds kStart = seconds(60);

// A built executable: in the build root, or in its module's folder.
std::string Executable(const std::string& module, const std::string& name) {
  const fs::path root = fs::path(QSWEEP_BINARY_DIR) / name;
  return fs::exists(root) ? root.string() : (fs::path(QSWEEP_BINARY_DIR) / module / name).string();
}

// Runs a command under a deadline; stderr goes with stdout.
CliResult RunCommand(const std::vector<std::string>& argv, milliseconds timeout = kSweep) {
  ::qsweep::testing::ProcessOptions o;
  o.timeout = timeout;
  o.merge_stderr = true;
  return ::qsweep::testing::RunProcess(argv, o);
}

// Waits until process `pid` (not necessarily our child) has exited; false at
// the deadline. Event-driven through a pidfd (readable once the process ends).
bool WaitForExit(pid_t pid, milliseconds timeout) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // already gone
  pollfd p{fd, POLLIN, 0};
  int n;
  while ((n = poll(&p, 1, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  close(fd);
  return n == 1;
}

// The value of `name` in a local run's metrics table ("| name | value |").
double TableValue(const std::string& text, const std::string& name) {
  auto at = text.find("| " + name + " ");
  if (at == std::string::npos) return -1;
  auto bar = text.find('|', at + 2);
  return std::stod(text.substr(bar + 1));
}

// A qsweep-server child (with its local workers, which share its stderr), its
// stderr read by a thread; tests wait for lines of it (never sleep: the port
// comes from its "serving on" line).
class ServerProcess {
 public:
  // Empty when the server serves; else why not.
  std::string Start(const fs::path& dir, const std::vector<std::string>& extra = {},
                    const std::string& worker_binary = "") {
    const std::string bin = Executable("server", "qsweep-server");
    const std::string worker =
        worker_binary.empty() ? Executable("worker", "qsweep-worker") : worker_binary;
    for (const auto& b : {bin, worker})
      if (!fs::exists(b)) return b + " is not built";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return "pipe failed";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> args = {bin,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--db",
                                     (dir / "q.db").string(),
                                     "--local-workers",
                                     "2",
                                     "--worker-binary",
                                     worker,
                                     "--heartbeat-ms",
                                     "300"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    setenv("QSWEEP_DATA_DIR", (dir / "data").c_str(), 1);
    int rc = posix_spawn(&pid_, bin.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      return std::string("cannot start qsweep-server: ") + std::strerror(rc);
    }
    read_fd_ = fds[0];
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n;
      while ((n = read(read_fd_, buf, sizeof(buf))) > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        log_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
      }
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
      cv_.notify_all();
    });
    const std::string kServing = "qsweep-server: serving on ";
    if (!WaitForLog(kServing, 1, kStart))
      return "qsweep-server printed no address within " + std::to_string(kStart.count()) + " ms";
    std::lock_guard<std::mutex> lock(mu_);
    const size_t at = log_.find(kServing) + kServing.size();
    address_ = log_.substr(at, log_.find(',', at) - at);
    return "";
  }
  // True once `needle` occurs `count` times in the server's stderr (which
  // its local workers share); false at the deadline or when stderr closed.
  bool WaitForLog(const std::string& needle, int count, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      int seen = 0;
      for (size_t at = log_.find(needle); at != std::string::npos;
           at = log_.find(needle, at + needle.size()))
        ++seen;
      return seen >= count || eof_;
    }) && !eof_;
  }
  // SIGTERM, then the exit status; SIGKILL (server and its workers) and -1 if
  // it has not exited within the deadline.
  int Stop(milliseconds timeout = seconds(60)) {
    if (pid_ <= 0) return -1;
    const std::vector<pid_t> workers = Children(pid_);
    kill(pid_, SIGTERM);
    int status = 0;
    int result = -1;
    if (WaitForExit(pid_, timeout)) {
      waitpid(pid_, &status, 0);
      result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      std::lock_guard<std::mutex> lock(mu_);
      log_ += "[test: qsweep-server did not stop within " + std::to_string(timeout.count()) +
              " ms of SIGTERM; killed]\n";
    }
    for (pid_t w : workers) kill(w, SIGKILL);  // orphaned only if the server was killed
    pid_ = 0;
    if (reader_.joinable()) reader_.join();
    close(read_fd_);
    return result;
  }
  // SIGKILL to the server and its local workers at once, like a lost node.
  void Kill() {
    if (pid_ <= 0) return;
    const std::vector<pid_t> workers = Children(pid_);
    kill(pid_, SIGKILL);
    for (pid_t w : workers) kill(w, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    if (reader_.joinable()) reader_.join();  // the workers' stderr closes as they die
    close(read_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    log_.clear();
    eof_ = false;
  }
  ~ServerProcess() { Stop(); }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  std::string log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  // The process's children (the server's local workers).
  static std::vector<pid_t> Children(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::vector<pid_t> out;
    pid_t child;
    while (f >> child) out.push_back(child);
    return out;
  }

 private:
  pid_t pid_ = 0;
  int read_fd_ = -1;
  std::string address_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  bool eof_ = false;
  std::thread reader_;
};

class EndToEndTest : public ::testing::Test {
 protected:
  virtual std::vector<std::string> ServerArgs() { return {}; }
  virtual std::string WorkerBinary() { return ""; }  // default: qsweep-worker
  virtual void BeforeServerStart() {}
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsweep_e2e_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    BeforeServerStart();
    if (HasFatalFailure()) return;
    const std::string error = server_.Start(dir_, ServerArgs(), WorkerBinary());
    ASSERT_EQ(error, "") << server_.log();
    // Both local workers registered: "on two workers" does not depend on how
    // fast the second one starts.
    ASSERT_TRUE(server_.WaitForLog("qsweep-worker: registered as ", 2, kStart)) << server_.log();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The qsweep executable as a user runs it, killed at `timeout`, with the
  // admin token the server wrote at its first start.
  CliResult Cli(const std::string& command, std::vector<std::string> args,
                milliseconds timeout = kQuick) {
    return CliAs((dir_ / "admin.token").string(), command, std::move(args), timeout);
  }
  // The same with another token file.
  CliResult CliAs(const std::string& token_file, const std::string& command,
                  std::vector<std::string> args, milliseconds timeout = kQuick) {
    std::vector<std::string> argv = {Executable("client", "qsweep"), command};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--server");
    argv.push_back(server_.address());
    argv.push_back("--token-file");
    argv.push_back(token_file);
    ::qsweep::testing::ProcessOptions o;
    o.timeout = timeout;
    return ::qsweep::testing::RunProcess(argv, o);
  }

  // A channel to the server with the admin token it wrote at its first start.
  std::shared_ptr<grpc::Channel> AdminChannel() {
    ChannelOptions o;
    o.address = server_.address();
    auto token = ReadTokenFile((dir_ / "admin.token").string());
    EXPECT_TRUE(token.ok()) << token.status();
    o.token = token.ok() ? *token : "";
    auto channel = MakeChannel(o);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.ok() ? *channel : nullptr;
  }

  fs::path dir_;
  ServerProcess server_;
};

// A user whose own token file belongs to another (remote) server still
// reaches the server `qsweep up` started on this machine: the CLI uses that
// server's admin token for exactly the address the server wrote next to it.
TEST_F(EndToEndTest, LocalServerIsReachedDespiteAnotherServersTokenFile) {
  ASSERT_TRUE(fs::exists(dir_ / "listen.address"));
  fs::create_directories(dir_ / "xdg-data");
  fs::create_directory_symlink(dir_, dir_ / "xdg-data" / "qsweep");  // the embedded state dir
  const fs::path config = dir_ / "xdg-config";
  fs::create_directories(config / "qsweep");
  const MintedToken remote = MintToken();  // unknown to this server
  ASSERT_TRUE(WriteSecretFile((config / "qsweep" / "token").string(), remote.secret + "\n").ok());
  ::qsweep::testing::ProcessOptions o;
  o.timeout = kQuick;
  o.env = {"XDG_DATA_HOME=" + (dir_ / "xdg-data").string(), "XDG_CONFIG_HOME=" + config.string()};
  const std::vector<std::string> argv = {
      Executable("client", "qsweep"), "workers", "--format", "json", "--server", server_.address()};
  auto local = ::qsweep::testing::RunProcess(argv, o);
  EXPECT_EQ(local.code, 0) << local.err;
  // Once the server stops, it no longer claims the address.
  server_.Stop();
  EXPECT_FALSE(fs::exists(dir_ / "listen.address"));
}

TEST_F(EndToEndTest, Lab1SmallSweepOnTwoWorkers) {
  auto submit = Cli("submit", {std::string(QSWEEP_SOURCE_DIR) + "/examples/lab1-small.toml",
                               "--format", "json", "--key", "e2e"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err;
  EXPECT_THAT(watch.out, HasSubstr("finished"));

  auto jobs_cli = Cli("jobs", {id, "--format", "json", "--sort", "test_acc_epoch"});
  ASSERT_EQ(jobs_cli.code, 0) << jobs_cli.err;
  json jobs = json::parse(jobs_cli.out);
  ASSERT_EQ(jobs.size(), 9u);
  double previous = 2.0;
  std::set<std::pair<int64_t, double>> trials;
  for (const auto& j : jobs) {
    ASSERT_EQ(j["state"], "SUCCEEDED") << j.dump() << "\n" << server_.log();
    const double acc = j["final_metrics"]["test_acc_epoch"];
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    EXPECT_LE(acc, previous);  // sorted best first
    previous = acc;
    trials.emplace(j["trial"]["batch_size"].get<int64_t>(),
                   j["trial"]["learning_rate"].get<double>());
  }
  EXPECT_EQ(trials.size(), 9u);

  const std::string best = jobs[0]["id"];
  auto show = Cli("show", {best, "--format", "json"});
  ASSERT_EQ(show.code, 0) << show.err;
  json job = json::parse(show.out);
  EXPECT_EQ(job["config"]["max_epochs"], 2);
  EXPECT_EQ(job["epochs"].size(), 2u);  // one row per epoch
  EXPECT_TRUE(job["epochs"][1].contains("val_acc_epoch"));
  EXPECT_EQ(job["attempts"].size(), 1u);
  std::set<std::string> artifact_names;
  for (const auto& a : job["artifacts"]) artifact_names.insert(a["name"]);
  EXPECT_TRUE(artifact_names.count("best")) << show.out;

  // The exported state dict loads in PyTorch and has the JSC-toy layer names.
  const std::string pt = (dir_ / "best.pt").string();
  auto get = Cli("checkpoint", {"get", best, "-o", pt});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_TRUE(artifact_names.count("best_state_dict")) << show.out;
  auto loads = RunCommand({"/usr/bin/python3", "-c",
                           "import torch,sys; sd=torch.load(sys.argv[1]); "
                           "sys.exit(0 if 'seq_blocks.2.weight' in sd else 3)",
                           pt},
                          kQuick);
  EXPECT_EQ(loads.code, 0) << loads.out << loads.err;

  // The same trial run locally (`qsweep train` runs this worker code) gives
  // the same metrics as the service run.
  const json* trial0 = nullptr;
  for (const auto& j : jobs)
    if (j["index"] == 0) trial0 = &j;
  ASSERT_NE(trial0, nullptr);
  ASSERT_EQ((*trial0)["trial"]["batch_size"], 64);
  ASSERT_EQ((*trial0)["trial"]["learning_rate"], 0.001);
  ::qsweep::testing::ProcessOptions train_options;
  train_options.timeout = kSweep;
  auto train = ::qsweep::testing::RunProcess(
      {Executable("worker", "qsweep-worker"), "train", "jsc-toy", "jsc-synthetic",
       "--synthetic-rows", "2000", "--max-epochs", "2", "--batch-size", "64", "--learning-rate",
       "0.001", "--seed", "0", "--project-dir", (dir_ / "local").string()},
      train_options);
  ASSERT_EQ(train.code, 0) << train.out << train.err;
  const std::string& local = train.out;
  for (const char* m : {"test_acc_epoch", "test_loss_epoch", "val_acc_epoch", "val_loss_epoch"})
    EXPECT_NEAR(TableValue(local, m), (*trial0)["final_metrics"][m].get<double>(), 6e-6) << m;

  // Accuracy curves of every trial, drawn by gnuplot.
  const std::string svg = (dir_ / "curves.svg").string();
  auto plot = Cli("plot", {id, "--metric", "val_acc_epoch", "--x", "epoch", "-o", svg});
  ASSERT_EQ(plot.code, 0) << plot.err;
  EXPECT_THAT(plot.out, HasSubstr("9 curves"));
  std::ifstream svg_file(svg);
  std::stringstream svg_text;
  svg_text << svg_file.rdbuf();
  EXPECT_NE(svg_text.str().find("<svg"), std::string::npos);
  EXPECT_NE(svg_text.str().find(">batch_size=64 learning_rate=0.001<"), std::string::npos);
  EXPECT_EQ(Cli("plot", {id, "--metric", "nope", "-o", svg}).code, 1);
  EXPECT_EQ(Cli("plot", {id, "-o", (dir_ / "curves.pdf").string()}).code, 2);

  auto workers = Cli("workers", {"--format", "json"});
  ASSERT_EQ(workers.code, 0) << workers.err;
  EXPECT_EQ(json::parse(workers.out).size(), 2u);
  auto status = Cli("status", {id, "--format", "json"});
  ASSERT_EQ(status.code, 0);
  EXPECT_EQ(json::parse(status.out)["succeeded"], 9);
  // Cancel and retry of a finished sweep change nothing, and say so.
  auto cancel = Cli("cancel", {id});
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("cancelled 0 job(s)"));
  auto retry = Cli("retry", {id, "--failed"});
  ASSERT_EQ(retry.code, 0) << retry.err;
  EXPECT_THAT(retry.out, HasSubstr("retrying 0 job(s)"));
  EXPECT_EQ(Cli("retry", {id}).code, 2);
  auto table = Cli("jobs", {id, "--format", "csv"});
  ASSERT_EQ(table.code, 0);
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 10);  // header + 9 rows
  // Submitting again with the same key does not create a second sweep.
  auto again = Cli("submit", {std::string(QSWEEP_SOURCE_DIR) + "/examples/lab1-small.toml",
                              "--format", "json", "--key", "e2e"});
  EXPECT_EQ(json::parse(again.out)["id"], id);
  EXPECT_TRUE(json::parse(again.out)["existing"].get<bool>());
  EXPECT_EQ(server_.Stop(), 0) << server_.log();
}

// A sweep with [passes.*]: each trial's best checkpoint is quantized by a
// dependent TRANSFORM job, whose report and checkpoint are queryable.
// `qsweep-server --check` (issue 9 §4): exit 0 and SERVING while the server
// runs, 1 once it has stopped. No token needed.
TEST_F(EndToEndTest, ServerCheckAnswersWhileServing) {
  auto check = [&] {
    ::qsweep::testing::ProcessOptions o;
    o.timeout = kQuick;
    return ::qsweep::testing::RunProcess(
        {Executable("server", "qsweep-server"), "--check", "--listen", server_.address()}, o);
  };
  auto serving = check();
  EXPECT_EQ(serving.code, 0) << serving.err;
  EXPECT_EQ(serving.out, "SERVING\n");
  ASSERT_EQ(server_.Stop(), 0) << server_.log();
  auto stopped = check();
  EXPECT_EQ(stopped.code, 1) << stopped.out;
  EXPECT_THAT(stopped.err, HasSubstr("health check failed"));
}

TEST_F(EndToEndTest, TransformJobsQuantizeEachTrial) {
  const std::string path = (dir_ / "quant.toml").string();
  std::ofstream(path) << R"(
model = "jsc-toy"
dataset = "jsc-synthetic"
synthetic_rows = 2000
max_epochs = 1
batch_size = 64
[sweep.grid]
learning_rate = [1e-3, 1e-2]
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
[passes.report_graph]
[transform]
style = "graph"
)";
  auto submit = Cli("submit", {path, "--format", "json"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  EXPECT_EQ(json::parse(submit.out)["jobs"], 4);
  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err;
  json jobs = json::parse(Cli("jobs", {id, "--format", "json"}).out);
  ASSERT_EQ(jobs.size(), 4u);
  for (const auto& j : jobs) ASSERT_EQ(j["state"], "SUCCEEDED") << j.dump() << server_.log();
  const json& t = jobs[2];
  ASSERT_EQ(t["kind"], "TRANSFORM");
  EXPECT_EQ(t["depends_on"], jobs[0]["id"]);
  const double before = t["final_metrics"]["test_acc_before"];
  const double after = t["final_metrics"]["test_acc_after_passes"];
  // Evaluating the fetched checkpoint reproduces the trial's own test accuracy.
  EXPECT_NEAR(before, jobs[0]["final_metrics"]["test_acc_epoch"].get<double>(), 1e-6);
  EXPECT_GE(after, 0.0);
  EXPECT_LE(after, 1.0);
  auto report = Cli("report", {t["id"].get<std::string>()});
  ASSERT_EQ(report.code, 0) << report.err;
  EXPECT_THAT(report.out, HasSubstr("quantize"));
  const std::string pt = (dir_ / "q.pt").string();
  auto get = Cli("checkpoint", {"get", t["id"], "--name", "transformed_state_dict", "-o", pt});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_GT(fs::file_size(pt), 100u);

  // One more transform of a finished trial, submitted on its own.
  const std::string config = (dir_ / "report_only.toml").string();
  std::ofstream(config) << "[passes.report_graph]\n";
  auto more =
      Cli("transform",
          {"submit", "--from", jobs[1]["id"].get<std::string>(), "--config", config, "--watch"},
          kSweep);
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_THAT(more.out, HasSubstr("1 succeeded"));
  EXPECT_EQ(
      Cli("transform", {"submit", "--from", jobs[2]["id"].get<std::string>(), "--config", config})
          .code,
      1);  // a TRANSFORM job is not a TRAIN job
  EXPECT_TRUE(IsServiceCommand("transform", {"submit"}));
  EXPECT_FALSE(IsServiceCommand("transform", {"--config", "x.toml"}));
}

// examples/python_client.py with the stubs generated at build time.
TEST_F(EndToEndTest, PythonClientPrintsTheBestTrial) {
  // The stubs are generated at build time (setup-debian.sh installs
  // python3-grpcio).
  const std::string stubs = std::string(QSWEEP_BINARY_DIR) + "/proto/python";
  ASSERT_TRUE(fs::exists(stubs + "/qsweep/v1/experiments_pb2.py"))
      << "no generated Python stubs under " << stubs;
  auto client =
      RunCommand({"/usr/bin/python3", std::string(QSWEEP_SOURCE_DIR) + "/examples/python_client.py",
                  "--server", server_.address(), "--token-file", (dir_ / "admin.token").string(),
                  "--stubs", stubs, "--best-state-dict", (dir_ / "py_best.pt").string(),
                  std::string(QSWEEP_SOURCE_DIR) + "/examples/lab1-small.toml"},
                 kSweep);
  const std::string& out = client.out;
  ASSERT_EQ(client.code, 0) << out << client.err;
  EXPECT_THAT(out, HasSubstr("submitted sweep"));
  EXPECT_THAT(out, HasSubstr("succeeded 9/9"));
  EXPECT_THAT(out, HasSubstr("best trial: sw-"));
  EXPECT_THAT(out, HasSubstr("test_acc_epoch="));
  // The best weights were checked against the job's hash and loaded with
  // torch.load(..., weights_only=True).
  EXPECT_THAT(out, HasSubstr("sha256 verified, loaded with weights_only=True"));
}

// Tokens through the CLI: an admin creates a user token; the user sees only
// their own sweeps; a readable token file is refused; a revoked token stops at
// once; a download whose bytes do not match the job's recorded hash is refused.
TEST_F(EndToEndTest, TokensOwnershipAndVerifiedDownloads) {
  const fs::path sweep = dir_ / "tiny.toml";
  std::ofstream(sweep) << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n"
                          "synthetic_rows = 600\nmax_epochs = 1\nbatch_size = 64\n"
                          "[sweep.grid]\nseed = [0]\n";
  auto submit = Cli("submit", {sweep.string(), "--format", "json"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  ASSERT_EQ(Cli("watch", {id}, kSweep).code, 0);
  const std::string job = id + "-0";

  const std::string carol = (dir_ / "carol.token").string();
  auto created = Cli("token", {"create", "--role", "user", "--owner", "carol", "-o", carol});
  ASSERT_EQ(created.code, 0) << created.err;
  struct stat st {};
  ASSERT_EQ(stat(carol.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Bad flags name the flag and the allowed values.
  auto bad_expiry = Cli("token", {"create", "--expires", "5x"});
  EXPECT_EQ(bad_expiry.code, 2);
  EXPECT_THAT(bad_expiry.err, HasSubstr("--expires '5x' must be a count with s, m, h or d"));
  auto bad_role = Cli("token", {"create", "--role", "root"});
  EXPECT_EQ(bad_role.code, 2);
  EXPECT_THAT(bad_role.err, HasSubstr("--role"));
  EXPECT_EQ(Cli("token", {"revoke"}).code, 2);  // the id is required
  auto listed = Cli("token", {"list", "--format", "json"});
  ASSERT_EQ(listed.code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("\"carol\""));
  EXPECT_THAT(listed.out, ::testing::Not(HasSubstr("qsw_")));  // no secret is ever listed

  // carol sees none of the admin's sweeps, and cannot read or cancel them.
  auto status = CliAs(carol, "status", {"--format", "json"});
  ASSERT_EQ(status.code, 0) << status.err;
  EXPECT_THAT(status.out, ::testing::Not(HasSubstr(id)));
  auto jobs = CliAs(carol, "jobs", {id});
  EXPECT_EQ(jobs.code, 1);
  EXPECT_THAT(jobs.err, HasSubstr("no sweep '" + id + "'"));
  EXPECT_EQ(CliAs(carol, "cancel", {job}).code, 1);
  const std::string stolen = (dir_ / "stolen.pt").string();
  EXPECT_EQ(CliAs(carol, "checkpoint", {"get", job, "-o", stolen}).code, 1);
  EXPECT_FALSE(fs::exists(stolen));
  // carol may not mint worker tokens.
  auto worker = CliAs(carol, "token", {"create", "--role", "worker"});
  EXPECT_EQ(worker.code, 1);
  EXPECT_THAT(worker.err, HasSubstr("users may create only user tokens"));

  // A token file others can read is refused before anything is sent.
  chmod(carol.c_str(), 0644);
  auto open = CliAs(carol, "status", {});
  EXPECT_EQ(open.code, 2);
  EXPECT_THAT(open.err, HasSubstr("chmod 600"));
  chmod(carol.c_str(), 0600);

  // The admin's download is verified against the hash the job records...
  const std::string pt = (dir_ / "best.pt").string();
  auto got = Cli("checkpoint", {"get", job, "-o", pt});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("verified"));
  // ...so bytes changed behind the server's back are refused, not written.
  json show = json::parse(Cli("show", {job, "--format", "json"}).out);
  std::string sha;
  for (const auto& a : show["artifacts"])
    if (a["name"] == "best_state_dict") sha = a["sha256"];
  ASSERT_EQ(sha.size(), 64u) << show.dump();
  auto tamper =
      RunCommand({"sqlite3", (dir_ / "q.db").string(),
                  "UPDATE artifacts SET data = X'00' || data WHERE sha256 = '" + sha + "'"},
                 kQuick);
  ASSERT_EQ(tamper.code, 0) << tamper.err;
  const std::string tampered = (dir_ / "tampered.pt").string();
  auto refused = Cli("checkpoint", {"get", job, "-o", tampered});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("refusing to write it"));
  EXPECT_FALSE(fs::exists(tampered));

  // Revocation: carol's next call is refused.
  std::string carol_token_id;
  for (const auto& t : json::parse(listed.out))
    if (t["owner"] == "carol") carol_token_id = t["id"];
  ASSERT_FALSE(carol_token_id.empty());
  ASSERT_EQ(Cli("token", {"revoke", carol_token_id}).code, 0);
  auto revoked = CliAs(carol, "status", {});
  EXPECT_EQ(revoked.code, 1);
  EXPECT_THAT(revoked.err, HasSubstr("was revoked"));
}

TEST_F(EndToEndTest, ErrorsAreOneLineAndNonZero) {
  auto show = Cli("show", {"sw-00000000-1"});
  EXPECT_EQ(show.code, 1);
  EXPECT_THAT(show.err, HasSubstr("sw-00000000-1"));
  EXPECT_EQ(std::count(show.err.begin(), show.err.end(), '\n'), 1);
  const std::string bad = (dir_ / "bad.toml").string();
  std::ofstream(bad) << "model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nbatch_size = [0]\n";
  auto submit = Cli("submit", {bad});
  EXPECT_EQ(submit.code, 1);
  EXPECT_THAT(submit.err, HasSubstr("batch_size"));
  auto missing = Cli("submit", {(dir_ / "nope.toml").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope.toml"));
  auto usage = Cli("jobs", {});
  EXPECT_EQ(usage.code, 2);
  auto format = Cli("workers", {"--format", "xml"});
  EXPECT_EQ(format.code, 2);
  EXPECT_THAT(format.err, HasSubstr("format"));
  ::qsweep::testing::ProcessOptions o;
  o.timeout = kQuick;
  auto unreachable = ::qsweep::testing::RunProcess(
      {Executable("client", "qsweep"), "status", "--server", "127.0.0.1:1", "--token-file",
       (dir_ / "admin.token").string()},
      o);
  EXPECT_EQ(unreachable.code, 1);
  EXPECT_THAT(unreachable.err, HasSubstr("cannot reach qsweep-server at 127.0.0.1:1"));
}

// Fault test: a worker killed with SIGKILL in the middle of a job stops
// renewing its lease; the lease expires and the other worker finishes the job.
// Deterministic: the local workers are qsweep-worker-held, which holds the
// first attempt to report a metric (tests/e2e/held_job_runner.h), so that
// attempt provably cannot finish before the kill, however fast the machine.
class WorkerCrashTest : public EndToEndTest {
 protected:
  std::vector<std::string> ServerArgs() override { return {"--lease-ttl-ms", "1000"}; }
  std::string WorkerBinary() override {
    return std::string(QSWEEP_BINARY_DIR) + "/tests/e2e/qsweep-worker-held";
  }
  void BeforeServerStart() override {
    const fs::path hold = dir_ / "hold";
    fs::create_directories(hold);
    const std::string fifo = (hold / "held.fifo").string();
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
    // Opened before the workers start, so the held worker's write finds a
    // reader.
    held_fd_ = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(held_fd_, 0) << std::strerror(errno);
    setenv("QSWEEP_TEST_HOLD_DIR", hold.c_str(),
           1);  // inherited by server and workers
  }
  void TearDown() override {
    unsetenv("QSWEEP_TEST_HOLD_DIR");
    if (held_fd_ >= 0) close(held_fd_);
    EndToEndTest::TearDown();
  }
  // The line "<pid> <job id>" the held worker writes; empty at the deadline.
  std::string WaitForHeldJob(milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.find('\n') == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{held_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return "";
      char buf[256];
      const ssize_t n = read(held_fd_, buf, sizeof buf);
      if (n > 0) line.append(buf, static_cast<size_t>(n));
    }
    return line.substr(0, line.find('\n'));
  }
  // The one trial of the sweep `toml` (written to `name`), submitted and held:
  // its sweep, the holding worker's pid and the held job. On a failure (a
  // refused submit, no hold, another job held) the test fails and job_id is
  // empty.
  struct HeldTrial {
    std::string sweep_id;
    pid_t pid = 0;
    std::string job_id;
  };
  HeldTrial SubmitAndWaitForHold(const std::string& name, const std::string& toml) {
    HeldTrial t;
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << toml;
    auto submit = Cli("submit", {path, "--format", "json"});
    if (submit.code != 0) {
      ADD_FAILURE() << submit.err;
      return t;
    }
    t.sweep_id = json::parse(submit.out)["id"];
    const std::string held = WaitForHeldJob(kSweep);
    if (held.empty()) {
      ADD_FAILURE() << "no job was held\n" << server_.log();
      return t;
    }
    std::istringstream(held) >> t.pid >> t.job_id;
    if (t.job_id != t.sweep_id + "-0") {
      ADD_FAILURE() << "held " << held << ", expected " << t.sweep_id << "-0";
      t.job_id.clear();
    }
    return t;
  }
  int held_fd_ = -1;
};

TEST_F(WorkerCrashTest, KilledWorkersJobIsRequeuedAndFinished) {
  // The first attempt reports a metric and is held: its worker says which.
  const HeldTrial held =
      SubmitAndWaitForHold("crash.toml",
                           "model = \"jsc-toy\"\ndataset = \"jsc-synthetic\"\n"
                           "synthetic_rows = 2000\nmax_epochs = 2\nbatch_size = 64\n"
                           "[sweep]\nmax_concurrency = 1\n[sweep.grid]\nseed = [1]\n");
  ASSERT_FALSE(held.job_id.empty());
  const std::string& id = held.sweep_id;
  const pid_t victim_pid = held.pid;
  const std::string& held_job = held.job_id;
  const std::vector<pid_t> workers = ServerProcess::Children(server_.pid());
  ASSERT_EQ(std::count(workers.begin(), workers.end(), victim_pid), 1)
      << "pid " << victim_pid << " is not a local worker of the server";
  auto running = Cli("show", {held_job, "--format", "json"});
  ASSERT_EQ(running.code, 0) << running.err;
  const json before = json::parse(running.out);
  // Leased to the victim: LEASED until its first heartbeat reaches the server,
  // then RUNNING; not finished either way (it is held).
  ASSERT_THAT(before["state"].get<std::string>(), ::testing::AnyOf("LEASED", "RUNNING"))
      << running.out;
  const std::string victim_worker = before["worker_id"];
  ASSERT_FALSE(victim_worker.empty()) << running.out;

  ASSERT_EQ(kill(victim_pid, SIGKILL), 0) << std::strerror(errno);
  ASSERT_TRUE(WaitForExit(victim_pid, kQuick)) << "worker " << victim_pid << " survived SIGKILL";

  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err << server_.log();
  auto show = Cli("show", {held_job, "--format", "json"});
  ASSERT_EQ(show.code, 0) << show.err;
  json job = json::parse(show.out);
  ASSERT_EQ(job["state"], "SUCCEEDED") << show.out << server_.log();
  ASSERT_EQ(job["attempts"].size(), 2u) << show.out;
  EXPECT_THAT(job["attempts"][0]["error"].get<std::string>(), HasSubstr("expired"));
  EXPECT_EQ(job["attempts"][0]["worker_id"], victim_worker);
  EXPECT_NE(job["attempts"][1]["worker_id"], victim_worker);
  EXPECT_EQ(job["epochs"].size(), 2u) << show.out;  // the finished attempt's metrics
}

// Resume (issue 9 §1): a worker killed with SIGKILL after its job's resume
// state for 2 epochs was stored (held at its first metric of epoch 2); the
// lease expires and the other worker continues from epoch 2, not from
// scratch. `qsweep show` records it (resumed_from_epoch), lists each epoch
// once, and the final metrics equal those of an uninterrupted run of the
// same trial, bit for bit.
class ResumeCrashTest : public WorkerCrashTest {
 protected:
  void BeforeServerStart() override {
    WorkerCrashTest::BeforeServerStart();
    setenv("QSWEEP_TEST_HOLD_EPOCH", "2", 1);  // inherited by the held workers
  }
  void TearDown() override {
    unsetenv("QSWEEP_TEST_HOLD_EPOCH");
    WorkerCrashTest::TearDown();
  }
};

TEST_F(ResumeCrashTest, KilledWorkersTrialResumesFromItsLastEpoch) {
  const HeldTrial held =
      SubmitAndWaitForHold("resume.toml",
                           "model = \"jsc-toy\"\ndataset = \"jsc-synthetic\"\n"
                           "synthetic_rows = 2000\nmax_epochs = 4\nbatch_size = 64\n"
                           "learning_rate = 0.01\nlog_every_n_steps = 5\n"
                           "[sweep]\nmax_concurrency = 1\n[sweep.grid]\nseed = [3]\n");
  ASSERT_FALSE(held.job_id.empty());
  const std::string& id = held.sweep_id;
  const pid_t victim_pid = held.pid;
  const std::string& held_job = held.job_id;
  ASSERT_EQ(kill(victim_pid, SIGKILL), 0) << std::strerror(errno);
  ASSERT_TRUE(WaitForExit(victim_pid, kQuick));
  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err << server_.log();
  auto show = Cli("show", {held_job, "--format", "json"});
  ASSERT_EQ(show.code, 0) << show.err;
  const json job = json::parse(show.out);
  ASSERT_EQ(job["state"], "SUCCEEDED") << show.out << server_.log();
  ASSERT_EQ(job["attempts"].size(), 2u) << show.out;
  EXPECT_EQ(job["attempts"][0]["resumed_from_epoch"], 0);
  EXPECT_EQ(job["attempts"][1]["resumed_from_epoch"], 2) << show.out;
  EXPECT_THAT(job["attempts"][0]["error"].get<std::string>(), HasSubstr("expired"));
  ASSERT_EQ(job["epochs"].size(), 4u) << show.out;  // 0, 1 from attempt 1; 2, 3 from attempt 2
  auto text = Cli("show", {held_job});
  EXPECT_THAT(text.out, HasSubstr("resumed at epoch"));

  // The same trial uninterrupted (nothing is held any more).
  auto again = Cli("submit", {(dir_ / "resume.toml").string(), "--format", "json"});
  ASSERT_EQ(again.code, 0) << again.err;
  const std::string ref_id = json::parse(again.out)["id"];
  ASSERT_EQ(Cli("watch", {ref_id}, kSweep).code, 0);
  auto ref_show = Cli("show", {ref_id + "-0", "--format", "json"});
  ASSERT_EQ(ref_show.code, 0) << ref_show.err;
  const json ref = json::parse(ref_show.out);
  ASSERT_EQ(ref["state"], "SUCCEEDED");
  for (const char* m : {"val_loss_epoch", "val_acc_epoch", "test_loss_epoch", "test_acc_epoch",
                        "best_val_loss_epoch", "best_epoch", "lr"})
    EXPECT_EQ(job["final_metrics"][m].get<double>(), ref["final_metrics"][m].get<double>()) << m;
  EXPECT_EQ(job["epochs"], ref["epochs"]);
}

// Everything the database holds that the crash test checks: per job its
// state and SUCCEEDED attempts, and every stored metric.
struct Stored {
  std::map<std::string, v1::JobState> states;
  std::map<std::string, int> succeeded_attempts;
  std::set<std::tuple<std::string, int32_t, std::string, int64_t>> metrics;
};

Stored ReadStored(const std::string& db) {
  Stored out;
  auto store = OpenSqliteStore(SqliteStoreOptions(db));  // the server is down: the lock is free
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  auto jobs = (*store)->ListJobs({});
  EXPECT_TRUE(jobs.ok());
  for (const auto& j : *jobs) {
    out.states[j.id()] = j.state();
    const auto attempts = (*store)->ListAttempts(j.id());
    EXPECT_TRUE(attempts.ok());
    for (const auto& a : attempts.ok() ? *attempts : std::vector<v1::Attempt>{}) {
      if (a.state() == v1::SUCCEEDED) ++out.succeeded_attempts[j.id()];
      const auto metrics = (*store)->ListMetrics(j.id(), a.number(), "");
      EXPECT_TRUE(metrics.ok());
      if (!metrics.ok()) continue;
      for (const auto& m : *metrics) out.metrics.insert({j.id(), a.number(), m.name(), m.step()});
    }
  }
  return out;
}

std::string IntegrityCheck(const std::string& db) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, nullptr);
  std::string v = sqlite3_step(st) == SQLITE_ROW
                      ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                      : sqlite3_errmsg(h);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

// `qsweep --server ADDR ... COMMAND`: global flags before the command work.
TEST_F(EndToEndTest, GlobalFlagsMayPrecedeTheCommand) {
  ::qsweep::testing::ProcessOptions o;
  o.timeout = kQuick;
  auto r = ::qsweep::testing::RunProcess(
      {Executable("client", "qsweep"), "--server", server_.address(), "--token-file",
       (dir_ / "admin.token").string(), "workers", "--format", "json"},
      o);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cpu"));
}

// A second server on the database of a running one exits at once with an
// error that says why, instead of leasing the same jobs twice.
TEST_F(EndToEndTest, ASecondServerOnTheSameDatabaseRefusesToStart) {
  ServerProcess second;
  EXPECT_NE(second.Start(dir_), "");
  EXPECT_NE(second.Stop(), 0);
  EXPECT_THAT(second.log(), HasSubstr("is in use by another process"));
  EXPECT_THAT(second.log(), HasSubstr("another qsweep-server"));
  auto workers = Cli("workers", {});  // the first one serves on
  EXPECT_EQ(workers.code, 0) << workers.err;
}

class ServerLogLevelTest : public EndToEndTest {
 protected:
  std::vector<std::string> ServerArgs() override { return {"--log-level", "debug"}; }
};

// The local workers log at the level the server was given: each was started
// with the server's --log-level.
TEST_F(ServerLogLevelTest, LocalWorkersGetTheServersLogLevel) {
  const std::vector<pid_t> workers = ServerProcess::Children(server_.pid());
  ASSERT_EQ(workers.size(), 2u) << server_.log();
  for (pid_t pid : workers) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_THAT(cmdline, HasSubstr(std::string("--log-level\0debug\0", 18))) << pid;
  }
}

class CoordinatorCrashTest : public EndToEndTest {
 protected:
  // A job on a worker killed with the coordinator loses its lease: ten kills
  // may cost one job more than the default three expiries.
  std::vector<std::string> ServerArgs() override {
    return {"--lease-ttl-ms", "1500", "--max-expiries", "20"};
  }
};

// The coordinator and its local workers are killed with SIGKILL ten times
// during a sweep, at seeded random moments after the workers registered, and
// restarted on the same database each time. The sweep completes, each job
// succeeds exactly once, every metric stored before a kill is still there,
// and the file passes PRAGMA integrity_check.
TEST_F(CoordinatorCrashTest, TenKillsDuringASweepLoseAndRepeatNothing) {
  const std::string path = (dir_ / "crash.toml").string();
  std::ofstream(path) << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n"
                         "synthetic_rows = 3000\nmax_epochs = 3\nbatch_size = 64\n"
                         "log_every_n_steps = 5\n"
                         "[sweep]\nretries = 1\n[sweep.grid]\nseed = [1, 2, 3, 4, 5, 6]\n";
  auto submit = Cli("submit", {path, "--format", "json", "--key", "crash"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  const std::string db = (dir_ / "q.db").string();
  std::mt19937 rng(8);  // seeded: the same kill moments on every run
  std::uniform_int_distribution<int> moment_ms(0, 2500);
  std::vector<Stored> before_kill;
  for (int kill = 0; kill < 10; ++kill) {
    const int wait = moment_ms(rng);
    std::this_thread::sleep_for(milliseconds(wait));  // the random moment itself
    server_.Kill();
    before_kill.push_back(ReadStored(db));
    ASSERT_EQ(IntegrityCheck(db), "ok") << "after kill " << kill;
    const std::string error = server_.Start(dir_, ServerArgs());
    ASSERT_EQ(error, "") << server_.log();
    ASSERT_TRUE(server_.WaitForLog("qsweep-worker: registered as ", 2, kStart)) << server_.log();
  }
  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err << server_.log();
  ASSERT_EQ(server_.Stop(), 0) << server_.log();
  const Stored last = ReadStored(db);
  EXPECT_EQ(IntegrityCheck(db), "ok");
  ASSERT_EQ(last.states.size(), 6u);
  for (const auto& [job, state] : last.states) {
    EXPECT_EQ(state, v1::SUCCEEDED) << job;
    EXPECT_EQ(last.succeeded_attempts.count(job) ? last.succeeded_attempts.at(job) : 0, 1) << job;
  }
  size_t seen = 0;
  for (const auto& snapshot : before_kill) {
    for (const auto& m : snapshot.metrics) {
      EXPECT_TRUE(last.metrics.count(m)) << std::get<0>(m) << " attempt " << std::get<1>(m) << " "
                                         << std::get<2>(m) << " step " << std::get<3>(m);
      ++seen;
    }
  }
  EXPECT_GT(seen, 0u);  // the kills did happen while metrics were being written
}

// Preemption (issue 9 §1): SIGUSR1 (what Slurm's --signal=B:USR1 forwards)
// makes the worker hand its running job back without using a retry and exit
// 75 so that the batch system requeues it; the other worker finishes the job.
TEST_F(WorkerCrashTest, SignalledWorkerHandsItsJobBackAndAsksForRequeue) {
  const HeldTrial held =
      SubmitAndWaitForHold("preempt.toml",
                           "model = \"jsc-toy\"\ndataset = \"jsc-synthetic\"\n"
                           "synthetic_rows = 2000\nmax_epochs = 2\nbatch_size = 64\n"
                           "[sweep]\nretries = 0\nmax_concurrency = 1\n[sweep.grid]\nseed = [1]\n");
  ASSERT_FALSE(held.job_id.empty());
  const std::string& id = held.sweep_id;
  const pid_t victim_pid = held.pid;
  const std::string& held_job = held.job_id;

  ASSERT_EQ(kill(victim_pid, SIGUSR1), 0) << std::strerror(errno);
  ASSERT_TRUE(server_.WaitForLog("handed 1 job(s) back; exit 75 (requeue)", 1, kQuick))
      << server_.log();
  ASSERT_TRUE(WaitForExit(victim_pid, kQuick)) << server_.log();

  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err << server_.log();
  auto show = Cli("show", {held_job, "--format", "json"});
  ASSERT_EQ(show.code, 0) << show.err;
  json job = json::parse(show.out);
  // retries = 0: only a hand-back that uses no retry lets it succeed.
  ASSERT_EQ(job["state"], "SUCCEEDED") << show.out << server_.log();
}

// The server prepares the dataset in its own data dir and serves it; the
// local workers start with an EMPTY data dir ($QSWEEP_DATA_DIR) and fetch the
// prepared file by hash instead of generating it themselves, for TRAIN and
// for TRANSFORM jobs (whose evaluation runs on the served file).
class ServedDatasetTest : public EndToEndTest {
 protected:
  std::vector<std::string> ServerArgs() override {
    return {"--data-dir", (dir_ / "server-data").string()};
  }
};

TEST_F(ServedDatasetTest, WorkerWithEmptyDataDirFetchesTheDataset) {
  const std::string path = (dir_ / "served.toml").string();
  std::ofstream(path) << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n"
                         "synthetic_rows = 1500\nsynthetic_seed = 3\nmax_epochs = 1\n"
                         "batch_size = 64\n[sweep.grid]\nlearning_rate = [1e-3, 1e-2]\n"
                         "[passes.quantize]\nby = \"type\"\n"
                         "[passes.quantize.default.config]\nname = \"NA\"\n"
                         "[passes.quantize.linear.config]\nname = \"integer\"\n"
                         "data_in_width = 8\ndata_in_frac_width = 4\nweight_width = 8\n"
                         "weight_frac_width = 4\nbias_width = 8\nbias_frac_width = 4\n";
  auto submit = Cli("submit", {path, "--format", "json"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  auto watch = Cli("watch", {id}, kSweep);
  ASSERT_EQ(watch.code, 0) << watch.err;

  std::ifstream prepared(dir_ / "server-data" / "jsc-synthetic-r1500-s3.qsds", std::ios::binary);
  ASSERT_TRUE(prepared) << "the server did not prepare the dataset";
  std::ostringstream bytes;
  bytes << prepared.rdbuf();
  auto stub = v1::Experiments::NewStub(AdminChannel());
  std::string served_sha;
  for (int i = 0; i < 4; ++i) {  // 2 TRAIN, then their 2 TRANSFORM jobs
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id(id + "-" + std::to_string(i));
    v1::GetJobResponse resp;
    ctx.set_deadline(std::chrono::system_clock::now() + kQuick);
    ASSERT_TRUE(stub->GetJob(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.job().state(), v1::SUCCEEDED) << resp.job().error() << server_.log();
    if (i > 0) {
      EXPECT_EQ(resp.job().dataset_sha256(), served_sha) << resp.job().id();
    }
    served_sha = resp.job().dataset_sha256();
  }
  ASSERT_EQ(served_sha.size(), 64u);
  // The workers' cache holds exactly the server's file, under its hash, and
  // the workers did not prepare the dataset themselves.
  const fs::path cached = dir_ / "data" / "by-sha256" / (served_sha + ".qsds");
  std::ifstream in(cached, std::ios::binary);
  ASSERT_TRUE(in) << cached;
  std::ostringstream got;
  got << in.rdbuf();
  EXPECT_TRUE(got.str() == bytes.str());
  EXPECT_FALSE(fs::exists(dir_ / "data" / "jsc-synthetic-r1500-s3.qsds"));
}

// True if `s` holds a byte a terminal acts on: C0 other than '\n', DEL, or
// the UTF-8 form of a C1 control.
bool HasRawControl(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      return true;
  }
  return false;
}

// A submitter's text is data on every output of the CLI (security issue,
// section 3): plotted, listed, shown, exported and in errors, nothing from
// the sweep runs or reaches the terminal as a control sequence.
TEST_F(EndToEndTest, HostileSweepTextIsDataOnEveryOutput) {
  const std::string m = (dir_ / "marker").string();
  const std::string path = (dir_ / "hostile.toml").string();
  std::ofstream(path) << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n"
                         "synthetic_rows = 600\nmax_epochs = 1\nbatch_size = 64\n"
                         "project = \"p\\u001b[2J\\n!touch "
                      << "marker_p\\n\"\n[sweep]\nname = \"n\\u001b]0;owned\\u0007\\r\\u009b31m\"\n"
                      << "[sweep.grid]\ntarget = [\"x\\n!touch " << m << "1\\n\", \"x\\ne\\n!touch "
                      << m << "3\\n\", \"`touch " << m
                      << "2` @x $y '\\\" \\\\ \\u001b[31m\\u007f\\u009b\"]\n";
  auto submit = Cli("submit", {path, "--format", "json"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  ASSERT_EQ(Cli("watch", {id}).code, 0);

  const std::string svg = (dir_ / "hostile.svg").string();
  auto plot = Cli("plot", {id, "--metric", "val_acc_epoch", "-o", svg});
  EXPECT_EQ(plot.code, 0) << plot.err << server_.log();
  EXPECT_TRUE(fs::exists(svg));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_NE(e.path().filename().string().rfind("marker", 0), 0u) << e.path();

  for (const auto& args : std::vector<std::vector<std::string>>{
           {id}, {id, "--format", "csv"}, {id, "--format", "json"}}) {
    auto jobs = Cli("jobs", args);
    ASSERT_EQ(jobs.code, 0) << jobs.err;
    EXPECT_FALSE(HasRawControl(jobs.out)) << jobs.out;
    if (args.size() == 3 && args[2] == "json") {
      EXPECT_FALSE(json::parse(jobs.out, nullptr, false).is_discarded()) << jobs.out;
    }
  }
  for (const std::string format : {"table", "json"}) {
    auto status = Cli("status", {id, "--format", format});
    ASSERT_EQ(status.code, 0) << status.err;
    EXPECT_FALSE(HasRawControl(status.out)) << status.out;
    auto show = Cli("show", {id + "-0", "--format", format});
    ASSERT_EQ(show.code, 0) << show.err;
    EXPECT_FALSE(HasRawControl(show.out)) << show.out;
  }
  EXPECT_THAT(Cli("status", {id}).out, HasSubstr("\\x1b]0;owned"));
  for (const std::string format : {"table", "json"}) {
    auto watch = Cli("watch", {id, "--format", format});  // finished: one event, then the end
    ASSERT_EQ(watch.code, 0) << watch.err;
    EXPECT_FALSE(HasRawControl(watch.out)) << watch.out;
  }
  // Errors quoting the sweep's text.
  const std::string bad = (dir_ / "bad-key.toml").string();
  std::ofstream(bad) << "model = \"jsc-tiny\"\ndataset = \"jsc\"\n\"k\\u001b[2J\" = 1\n";
  auto refused = Cli("submit", {bad});
  EXPECT_NE(refused.code, 0);
  EXPECT_THAT(refused.err, HasSubstr("\\x1b[2J"));
  EXPECT_FALSE(HasRawControl(refused.err)) << refused.err;
}

// The service opens no file named by a request (security issue, section 2):
// the CLI sends local model files inline, the server answers every non-zoo
// model string alike, and keys naming places are refused.
TEST_F(EndToEndTest, ModelFilesTravelInlineAndPathsAreRefused) {
  fs::create_directories(dir_ / "models");
  std::ofstream(dir_ / "models" / "small.toml") << "hidden = [8]\n";
  const std::string path = (dir_ / "inline.toml").string();
  std::ofstream(path) << "model = \"" << QSWEEP_SOURCE_DIR << "/examples/models/jsc-10x.toml\"\n"
                      << "dataset = \"jsc-synthetic\"\nsynthetic_rows = 600\nmax_epochs = 1\n"
                         "batch_size = 64\n[sweep.grid]\n"
                         "model = [\"models/small.toml\", \"jsc-tiny\"]\n"
                         "seed = [1]\n";
  auto submit = Cli("submit", {path, "--format", "json"});
  ASSERT_EQ(submit.code, 0) << submit.err;
  const std::string id = json::parse(submit.out)["id"];
  ASSERT_EQ(Cli("watch", {id}).code, 0);
  json jobs = json::parse(Cli("jobs", {id, "--format", "json"}).out);
  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& j : jobs) ASSERT_EQ(j["state"], "SUCCEEDED") << j.dump() << server_.log();
  json show = json::parse(Cli("show", {jobs[0]["id"].get<std::string>(), "--format", "json"}).out);
  ASSERT_TRUE(show["config"]["model"].is_object()) << show.dump();
  EXPECT_EQ(show["config"]["model"]["name"], "small");
  EXPECT_EQ(show["config"]["model"]["hidden"], json({8}));
  EXPECT_FALSE(show["config"].contains("data_dir"));

  // Raw requests naming server files: one answer, whatever exists.
  auto stub = v1::Experiments::NewStub(AdminChannel());
  std::vector<std::string> messages;
  for (const std::string model : {"/etc/hostname", "/nonexistent.toml", "/dev/zero"}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::SubmitSweepRequest req;
    req.set_sweep_toml("model = \"" + model + "\"\ndataset = \"jsc\"\n");
    v1::SubmitSweepResponse resp;
    grpc::Status s = stub->SubmitSweep(&ctx, req, &resp);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << model << s.error_message();
    const std::string msg = s.error_message();
    const size_t at = msg.find(model);
    ASSERT_NE(at, std::string::npos) << msg;
    messages.push_back(msg.substr(0, at) + "M" + msg.substr(at + model.size()));
    EXPECT_THAT(messages.back(), HasSubstr("sent inline"));
  }
  EXPECT_EQ(messages[0], messages[1]);
  EXPECT_EQ(messages[0], messages[2]);
  {  // The same for a transform config.
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::SubmitTransformRequest req;
    req.set_from_job_id(jobs[1]["id"].get<std::string>());
    req.set_config_toml("model = \"/etc/hostname\"\n[passes.report_graph]\n");
    v1::SubmitTransformResponse resp;
    grpc::Status s = stub->SubmitTransform(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("sent inline"));
  }
  // Places come from the server's and workers' flags, never from a sweep.
  const std::string place = (dir_ / "place").string();
  for (const std::string key : {"data_dir", "project_dir", "load_name"}) {
    const std::string bad = (dir_ / "place.toml").string();
    std::ofstream(bad) << "model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n"
                       << key << " = \"" << place << "\"\n";
    auto refused = Cli("submit", {bad});
    EXPECT_NE(refused.code, 0) << key;
    EXPECT_THAT(refused.err, HasSubstr("key '" + key + "' names a place")) << key;
  }
  const std::string report = (dir_ / "report.toml").string();
  std::ofstream(report) << "[passes.report_graph]\nfile_name = \"../../escaped.txt\"\n";
  auto escaped =
      Cli("transform", {"submit", "--from", jobs[1]["id"].get<std::string>(), "--config", report});
  EXPECT_NE(escaped.code, 0);
  EXPECT_THAT(escaped.err, HasSubstr("passes.report_graph.file_name"));
  EXPECT_FALSE(fs::exists(place));
}

}  // namespace
}  // namespace qsweep
