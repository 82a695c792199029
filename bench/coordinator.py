#!/usr/bin/python3
"""Coordinator throughput: no-op jobs through the real qsweep-server, against Optuna's storage.

Starts qsweep-server (SQLite database in a temporary folder, synchronous = FULL, datasets not
served) on loopback and runs build/bench/qsweep-bench-coordinator against it: W simulated
workers (default 16) speaking the Workers gRPC API (Register, then Lease -> Heartbeat ->
Complete at once per job; each Complete carries the next LeaseRequest,
CompleteRequest.lease_next, so that a job costs two round trips once a worker has its first
lease), N no-op jobs (default 10,000) submitted in sweeps of 500; it prints jobs/s and the
submit -> lease latency (p50/p99) of single-job sweeps handed to idle long-polling workers. The
same run is repeated with separate Lease calls (three round trips per job) and with group
commit off (--max-batch 1: one SQLite transaction per call), and
the baseline, ../shared/bench/optuna_storage.py (Optuna with its SQLite storage, 4 processes,
ask -> tell on a trivial objective), runs in the same script. Prints every figure as a ratio
against the baseline. Issue 10 target: >= 2,000 jobs/s (about 100x Optuna) with synchronous = FULL.

  /usr/bin/python3 bench/coordinator.py [--jobs 10000] [--workers 16] [--quick]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

import bench_service

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OPTUNA = os.path.join(os.path.dirname(ROOT), "shared", "bench", "optuna_storage.py")


def run_server_bench(build, tmp, name, max_batch, jobs, workers, latency_samples,
                     complete_leases_next=True):
    state = os.path.join(tmp, name)
    os.makedirs(state)
    addr = f"127.0.0.1:{bench_service.free_port()}"
    log = open(os.path.join(state, "server.log"), "w")
    server = subprocess.Popen([os.path.join(build, "qsweep-server"), "--listen", addr,
                               "--db", os.path.join(state, "q.db"), "--no-serve-datasets",
                               "--max-batch", str(max_batch)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        user, worker = bench_service.wait_and_make_tokens(build, server, addr, state, state,
                                                          log.name)
        out = subprocess.run([os.path.join(build, "bench", "qsweep-bench-coordinator"),
                              "--server", addr, "--user-token-file", user,
                              "--worker-token-file", worker, "--jobs", str(jobs),
                              "--workers", str(workers),
                              "--latency-samples", str(latency_samples),
                              "--complete-leases-next", "1" if complete_leases_next else "0"],
                             check=True, capture_output=True, text=True, timeout=1800).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--optuna", default=DEFAULT_OPTUNA)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2,000 jobs, 50 latency samples")
    a = ap.parse_args()
    if a.quick:
        a.jobs, a.latency_samples = 2000, 50
    tmp = tempfile.mkdtemp(prefix="qsweep-coord-")
    try:
        grouped = run_server_bench(a.build, tmp, "grouped", 256, a.jobs, a.workers,
                                   a.latency_samples)
        print(f"qsweep, group commit:        {grouped['jobs_per_second']:8.0f} jobs/s  "
              f"latency p50 {grouped['latency_p50_ms']:.2f} ms p99 "
              f"{grouped['latency_p99_ms']:.2f} ms  ({grouped['jobs']} jobs, "
              f"{grouped['workers']} workers, errors {grouped['errors']})", flush=True)
        separate = run_server_bench(a.build, tmp, "separate", 256, a.jobs, a.workers,
                                    a.latency_samples, complete_leases_next=False)
        print(f"qsweep, separate Lease calls:{separate['jobs_per_second']:8.0f} jobs/s  "
              f"latency p50 {separate['latency_p50_ms']:.2f} ms p99 "
              f"{separate['latency_p99_ms']:.2f} ms  (Lease, Heartbeat, Complete: three round "
              f"trips per job)", flush=True)
        single = run_server_bench(a.build, tmp, "single", 1, max(1000, a.jobs // 5), a.workers,
                                  a.latency_samples, complete_leases_next=False)
        print(f"qsweep, one txn per call:    {single['jobs_per_second']:8.0f} jobs/s  "
              f"latency p50 {single['latency_p50_ms']:.2f} ms p99 "
              f"{single['latency_p99_ms']:.2f} ms  ({single['jobs']} jobs)", flush=True)
        optuna = None
        try:
            out = subprocess.run(["/usr/bin/python3", a.optuna, "--workers", "4", "--trials", "200"],
                                 check=True, capture_output=True, text=True, timeout=1800).stdout
            optuna = json.loads(out.strip().splitlines()[-1])
            print(f"optuna sqlite storage:       {optuna['trials_per_second']:8.1f} trials/s "
                  f"({optuna['workers']} processes, failures {optuna['failures']})")
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"optuna baseline did not run ({e}); install python3-optuna")
        summary = {"group_commit": grouped, "separate_lease_calls": separate,
                   "one_transaction_per_call": single,
                   "group_commit_speedup": round(grouped["jobs_per_second"] /
                                                 single["jobs_per_second"], 2)}
        print(f"group commit vs one transaction per call: {summary['group_commit_speedup']:.1f}x")
        if optuna:
            summary["optuna"] = optuna
            summary["ratio_vs_optuna"] = round(grouped["jobs_per_second"] /
                                               optuna["trials_per_second"], 1)
            print(f"qsweep vs optuna: {summary['ratio_vs_optuna']:.0f}x "
                  f"(target: >= 2000 jobs/s, ~100x: "
                  f"{'met' if grouped['jobs_per_second'] >= 2000 else 'NOT met'})")
        print(json.dumps(summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
