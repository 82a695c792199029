// WatchSweep latency and server CPU: W clients watch one sweep of N jobs on a
// running qsweep-server (loopback) while a simulated worker changes the state
// of one job at a time (Lease: PENDING -> LEASED). For each change it
// measures the time from just before the Lease call to the moment each
// watcher has the job as LEASED, and waits until all have it before the next
// change. It reads the server's CPU time (/proc/PID/stat) around each phase:
//   idle_0      no watchers, nothing happens           (idle_seconds)
//   changes_0   C changes, no watchers
//   first_look  W watchers open and receive every job
//   idle_w      W watchers open, nothing happens       (idle_seconds)
//   changes_w   C changes, every watcher receives each
// Prints one JSON line. Run by bench/watch_latency.py, which starts the
// server and prints the figures as ratios.
//
//   qsweep-bench-watch --server 127.0.0.1:PORT --server-pid PID
//       --user-token-file U --worker-token-file W [--jobs 1000]
//       [--watchers 100] [--changes 200] [--idle-seconds 3]
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "common/channel.h"
#include "common/secrets.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "qsweep/v1/workers.grpc.pb.h"

namespace {

using qsweep::bench::Clock;
using qsweep::bench::Ms;
using qsweep::bench::NoOpSweepToml;
using qsweep::bench::Percentile;

struct Args {
  std::string server;
  int server_pid = 0;
  std::string user_token_file;
  std::string worker_token_file;
  int jobs = 1000;
  int watchers = 100;
  int changes = 200;
  double idle_seconds = 3;
};

// User + system CPU seconds of process `pid` so far.
double CpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = all.rfind(')');
  if (paren == std::string::npos) {
    std::fprintf(stderr, "cannot read /proc/%d/stat\n", pid);
    std::exit(2);
  }
  std::istringstream fields(all.substr(paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stod(f);
    if (i == 15) stime = std::stod(f);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::shared_ptr<grpc::Channel> Channel(const Args& a, const std::string& token_file) {
  return qsweep::bench::TokenChannel(a.server, token_file);
}

// What the watchers have seen; shared by their threads.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  int first_looks = 0;  // watchers that have every job
  // job id -> per watcher, when it first had the job LEASED
  std::map<std::string, std::vector<Clock::time_point>> leased;
  std::map<std::string, int> leased_count;
  int ended = 0;
};

void WatchLoop(qsweep::v1::Experiments::Stub& stub, const std::string& sweep_id, int index,
               int jobs, Seen& seen, grpc::ClientContext& ctx, int watchers) {
  qsweep::v1::WatchSweepRequest req;
  req.set_sweep_id(sweep_id);
  auto reader = stub.WatchSweep(&ctx, req);
  qsweep::v1::WatchSweepEvent event;
  int have = 0;
  bool first = true;
  while (reader->Read(&event)) {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> lock(seen.mu);
    for (const auto& j : event.jobs()) {
      if (first) ++have;
      if (j.state() == qsweep::v1::LEASED) {
        auto& times = seen.leased[j.id()];
        if (times.empty()) times.resize(watchers);
        if (times[index] == Clock::time_point()) {
          times[index] = now;
          ++seen.leased_count[j.id()];
          seen.cv.notify_all();
        }
      }
    }
    if (first && have >= jobs && !event.more_jobs()) {
      first = false;
      ++seen.first_looks;
      seen.cv.notify_all();
    }
  }
  reader->Finish();
  std::lock_guard<std::mutex> lock(seen.mu);
  ++seen.ended;
  seen.cv.notify_all();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--server")
      a.server = v;
    else if (k == "--server-pid")
      a.server_pid = std::stoi(v);
    else if (k == "--user-token-file")
      a.user_token_file = v;
    else if (k == "--worker-token-file")
      a.worker_token_file = v;
    else if (k == "--jobs")
      a.jobs = std::stoi(v);
    else if (k == "--watchers")
      a.watchers = std::stoi(v);
    else if (k == "--changes")
      a.changes = std::stoi(v);
    else if (k == "--idle-seconds")
      a.idle_seconds = std::stod(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.server.empty() || a.server_pid <= 0 || a.user_token_file.empty() ||
      a.worker_token_file.empty() || 2 * a.changes > a.jobs) {
    std::fprintf(stderr,
                 "need --server, --server-pid, --user-token-file and --worker-token-file, "
                 "and --jobs at least twice --changes\n");
    return 2;
  }
  auto experiments = qsweep::v1::Experiments::NewStub(Channel(a, a.user_token_file));
  auto workers = qsweep::v1::Workers::NewStub(Channel(a, a.worker_token_file));

  std::string sweep_id;
  {
    grpc::ClientContext ctx;
    qsweep::v1::SubmitSweepRequest req;
    req.set_sweep_toml(NoOpSweepToml(a.jobs));
    qsweep::v1::SubmitSweepResponse resp;
    grpc::Status s = experiments->SubmitSweep(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "SubmitSweep: %s\n", s.error_message().c_str());
      return 1;
    }
    sweep_id = resp.sweep().id();
  }
  std::string worker_id;
  {
    grpc::ClientContext ctx;
    qsweep::v1::RegisterRequest req;
    req.set_name("watch-bench");
    req.set_device("cpu");
    req.set_slots(1);
    qsweep::v1::RegisterResponse resp;
    if (!workers->Register(&ctx, req, &resp).ok()) return 1;
    worker_id = resp.worker_id();
  }
  // One change: lease the next job. Returns its id and the time before the call.
  auto change = [&](Clock::time_point& t0) -> std::string {
    grpc::ClientContext ctx;
    qsweep::v1::LeaseRequest req;
    req.set_worker_id(worker_id);
    req.set_max_jobs(1);
    req.set_pack(1);
    qsweep::v1::LeaseResponse resp;
    t0 = Clock::now();
    grpc::Status s = workers->Lease(&ctx, req, &resp);
    if (!s.ok() || resp.leases_size() != 1) {
      std::fprintf(stderr, "Lease: %s\n", s.error_message().c_str());
      std::exit(1);
    }
    return resp.leases(0).job().id();
  };
  auto idle = [&] { std::this_thread::sleep_for(std::chrono::duration<double>(a.idle_seconds)); };
  std::map<std::string, double> cpu, wall;
  auto phase = [&](const char* name, auto&& body) {
    const double c0 = CpuSeconds(a.server_pid);
    const auto w0 = Clock::now();
    body();
    cpu[name] = CpuSeconds(a.server_pid) - c0;
    wall[name] = std::chrono::duration<double>(Clock::now() - w0).count();
  };

  phase("idle_0", idle);
  phase("changes_0", [&] {
    Clock::time_point t0;
    for (int i = 0; i < a.changes; ++i) change(t0);
  });

  Seen seen;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> threads;
  // A few channels (clients), each carrying a share of the watch streams.
  std::vector<std::unique_ptr<qsweep::v1::Experiments::Stub>> stubs;
  for (int i = 0; i < 4; ++i)
    stubs.push_back(qsweep::v1::Experiments::NewStub(Channel(a, a.user_token_file)));
  phase("first_look", [&] {
    for (int i = 0; i < a.watchers; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      threads.emplace_back(WatchLoop, std::ref(*stubs[i % stubs.size()]), sweep_id, i, a.jobs,
                           std::ref(seen), std::ref(*contexts.back()), a.watchers);
    }
    std::unique_lock<std::mutex> lock(seen.mu);
    seen.cv.wait(lock, [&] { return seen.first_looks + seen.ended >= a.watchers; });
  });
  if (seen.ended > 0) {
    std::fprintf(stderr, "%d watch streams ended early\n", seen.ended);
    return 1;
  }
  phase("idle_w", idle);

  std::vector<double> each, slowest;  // to each watcher; to the last watcher of a change
  phase("changes_w", [&] {
    for (int i = 0; i < a.changes; ++i) {
      Clock::time_point t0;
      const std::string id = change(t0);
      std::unique_lock<std::mutex> lock(seen.mu);
      seen.cv.wait(lock, [&] { return seen.leased_count[id] >= a.watchers; });
      double last = 0;
      for (const auto& t : seen.leased[id]) {
        each.push_back(Ms(t - t0));
        last = std::max(last, Ms(t - t0));
      }
      slowest.push_back(last);
    }
  });
  for (auto& c : contexts) c->TryCancel();
  for (auto& t : threads) t.join();

  std::printf(
      "{\"jobs\": %d, \"watchers\": %d, \"changes\": %d, \"idle_seconds\": %.1f, "
      "\"latency_p50_ms\": %.3f, \"latency_p99_ms\": %.3f, \"latency_max_ms\": %.3f, "
      "\"all_watchers_p50_ms\": %.3f, \"all_watchers_p99_ms\": %.3f, "
      "\"cpu_idle_0_s\": %.3f, \"cpu_changes_0_s\": %.3f, \"cpu_first_look_s\": %.3f, "
      "\"cpu_idle_w_s\": %.3f, \"cpu_changes_w_s\": %.3f, "
      "\"wall_changes_0_s\": %.3f, \"wall_first_look_s\": %.3f, \"wall_changes_w_s\": %.3f}\n",
      a.jobs, a.watchers, a.changes, a.idle_seconds, Percentile(each, 0.5), Percentile(each, 0.99),
      Percentile(each, 1.0), Percentile(slowest, 0.5), Percentile(slowest, 0.99), cpu["idle_0"],
      cpu["changes_0"], cpu["first_look"], cpu["idle_w"], cpu["changes_w"], wall["changes_0"],
      wall["first_look"], wall["changes_w"]);
  return 0;
}
