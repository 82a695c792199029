// Coordinator throughput: N no-op jobs through a running qsweep-server, with
// W simulated workers speaking the Workers gRPC API on loopback (Register,
// then Lease -> Heartbeat -> Complete at once for every job, no training).
// Prints one JSON line: jobs/s from the first submission to the last
// completion, and submit -> lease latency (p50/p99) of single-job sweeps
// submitted one at a time to idle, long-polling workers. Run by
// bench/coordinator.py, which starts the server and the baseline.
//
//   qsweep-bench-coordinator --server 127.0.0.1:PORT --user-token-file U
//       --worker-token-file W [--jobs 10000] [--workers 16] [--sweep-size 500]
//       [--latency-samples 200] [--complete-leases-next 1|0]
//
// With --complete-leases-next 1 (the default) each Complete carries the next
// LeaseRequest (CompleteRequest.lease_next), so a job costs two round trips
// (Heartbeat, Complete) once a worker has its first lease; 0: three (Lease,
// Heartbeat, Complete).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
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
  std::string user_token_file;
  std::string worker_token_file;
  int jobs = 10000;
  int workers = 16;
  int sweep_size = 500;
  int latency_samples = 200;
  // Complete carries the next LeaseRequest (CompleteRequest.lease_next): two
  // round trips per job instead of three.
  bool complete_leases_next = true;
};

std::shared_ptr<grpc::Channel> Channel(const Args& a, const std::string& token_file) {
  return qsweep::bench::TokenChannel(a.server, token_file);
}

// Submission times by sweep id, and lease latencies; shared by all threads.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> submitted;  // sweep id -> before SubmitSweep
  std::map<std::string, Clock::time_point> leased;     // sweep id -> first lease seen
  std::atomic<int> completed{0};
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
};

void WorkerLoop(const Args& a, int index, Shared& shared) {
  auto stub = qsweep::v1::Workers::NewStub(Channel(a, a.worker_token_file));
  qsweep::v1::RegisterRequest reg;
  reg.set_request_id(absl::StrCat("bench-register-", index));
  reg.set_name(absl::StrCat("bench-", index));
  reg.set_device("cpu");
  reg.set_slots(1);
  qsweep::v1::RegisterResponse registered;
  {
    grpc::ClientContext ctx;
    if (!stub->Register(&ctx, reg, &registered).ok()) {
      ++shared.errors;
      return;
    }
  }
  int64_t n = 0;
  auto lease_request = [&](bool wait) {
    qsweep::v1::LeaseRequest lr;
    lr.set_request_id(absl::StrCat("bench-", index, "-", n++));
    lr.set_worker_id(registered.worker_id());
    lr.set_max_jobs(1);
    lr.set_wait_ms(wait ? 200 : 0);
    return lr;
  };
  qsweep::v1::LeaseResponse leases;  // granted and not yet run
  while (!shared.stop) {
    if (leases.leases().empty()) {
      grpc::ClientContext lctx;
      if (!stub->Lease(&lctx, lease_request(true), &leases).ok()) {
        ++shared.errors;
        leases.Clear();
        continue;
      }
    }
    const auto now = Clock::now();
    qsweep::v1::LeaseResponse granted = std::move(leases);
    leases.Clear();
    for (const auto& lease : granted.leases()) {
      {
        std::lock_guard<std::mutex> lock(shared.mu);
        shared.leased.emplace(lease.job().sweep_id(), now);
      }
      shared.cv.notify_all();
      qsweep::v1::HeartbeatRequest hb;
      hb.set_request_id(absl::StrCat("bench-hb-", index, "-", n));
      hb.set_worker_id(registered.worker_id());
      auto* u = hb.add_updates();
      u->set_lease_id(lease.lease_id());
      u->set_epoch(lease.epoch());
      qsweep::v1::HeartbeatResponse hr;
      grpc::ClientContext hctx;
      if (!stub->Heartbeat(&hctx, hb, &hr).ok()) ++shared.errors;
      qsweep::v1::CompleteRequest cr;
      cr.set_request_id(absl::StrCat("bench-complete-", index, "-", n));
      cr.set_lease_id(lease.lease_id());
      cr.set_epoch(lease.epoch());
      (*cr.mutable_final_metrics())["test_acc_epoch"] = 0.5;
      if (a.complete_leases_next && granted.leases_size() == 1 && !shared.stop)
        *cr.mutable_lease_next() = lease_request(false);
      qsweep::v1::CompleteResponse cresp;
      grpc::ClientContext cctx;
      if (stub->Complete(&cctx, cr, &cresp).ok()) {
        ++shared.completed;
        leases = std::move(*cresp.mutable_next());
      } else {
        ++shared.errors;
      }
    }
    shared.cv.notify_all();
  }
  // Leases granted with the last Complete are handed back unrun.
  for (const auto& lease : leases.leases()) {
    qsweep::v1::FailRequest fr;
    fr.set_lease_id(lease.lease_id());
    fr.set_epoch(lease.epoch());
    fr.set_hand_back(true);
    fr.set_error("benchmark over");
    qsweep::v1::FailResponse fresp;
    grpc::ClientContext fctx;
    stub->Fail(&fctx, fr, &fresp);
  }
}

// Submits a sweep of `trials` no-op jobs; returns its id ("" on error).
std::string Submit(qsweep::v1::Experiments::Stub& stub, int trials, Shared& shared) {
  qsweep::v1::SubmitSweepRequest req;
  req.set_sweep_toml(NoOpSweepToml(trials));
  qsweep::v1::SubmitSweepResponse resp;
  grpc::ClientContext ctx;
  const auto t0 = Clock::now();
  grpc::Status s = stub.SubmitSweep(&ctx, req, &resp);
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.error_message().c_str());
    return "";
  }
  std::lock_guard<std::mutex> lock(shared.mu);
  shared.submitted[resp.sweep().id()] = t0;
  return resp.sweep().id();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--server")
      a.server = v;
    else if (k == "--user-token-file")
      a.user_token_file = v;
    else if (k == "--worker-token-file")
      a.worker_token_file = v;
    else if (k == "--jobs")
      a.jobs = std::stoi(v);
    else if (k == "--workers")
      a.workers = std::stoi(v);
    else if (k == "--sweep-size")
      a.sweep_size = std::stoi(v);
    else if (k == "--latency-samples")
      a.latency_samples = std::stoi(v);
    else if (k == "--complete-leases-next")
      a.complete_leases_next = v == "1";
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.server.empty() || a.user_token_file.empty() || a.worker_token_file.empty()) {
    std::fprintf(stderr, "need --server, --user-token-file and --worker-token-file\n");
    return 2;
  }
  Shared shared;
  std::vector<std::thread> workers;
  for (int i = 0; i < a.workers; ++i) workers.emplace_back([&, i] { WorkerLoop(a, i, shared); });
  auto experiments = qsweep::v1::Experiments::NewStub(Channel(a, a.user_token_file));

  // Throughput: N jobs in sweeps of sweep_size, submitted back to back.
  const auto t0 = Clock::now();
  for (int left = a.jobs; left > 0; left -= a.sweep_size)
    if (Submit(*experiments, std::min(left, a.sweep_size), shared).empty()) return 1;
  const auto submitted = Clock::now();
  {
    std::unique_lock<std::mutex> lock(shared.mu);
    shared.cv.wait(lock, [&] { return shared.completed.load() >= a.jobs; });
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  // Latency: one-job sweeps, one at a time, to idle long-polling workers.
  std::vector<double> latency;
  for (int i = 0; i < a.latency_samples; ++i) {
    const std::string id = Submit(*experiments, 1, shared);
    if (id.empty()) return 1;
    std::unique_lock<std::mutex> lock(shared.mu);
    shared.cv.wait(lock, [&] { return shared.completed.load() >= a.jobs + i + 1; });
    latency.push_back(Ms(shared.leased.at(id) - shared.submitted.at(id)));
  }
  shared.stop = true;
  for (auto& t : workers) t.join();
  std::printf(
      "{\"jobs\": %d, \"workers\": %d, \"seconds\": %.3f, \"jobs_per_second\": %.1f, "
      "\"submit_seconds\": %.3f, \"latency_samples\": %d, \"latency_p50_ms\": %.3f, "
      "\"latency_p99_ms\": %.3f, \"errors\": %d, \"complete_leases_next\": %s}\n",
      a.jobs, a.workers, seconds, a.jobs / seconds,
      std::chrono::duration<double>(submitted - t0).count(), a.latency_samples,
      Percentile(latency, 0.5), Percentile(latency, 0.99), shared.errors.load(),
      a.complete_leases_next ? "true" : "false");
  return 0;
}
