#!/usr/bin/python3
"""WatchSweep: latency from a job's state change to every watcher, and server CPU with many watchers.

Starts qsweep-server (SQLite database in a temporary folder, datasets not served) on loopback and
runs build/bench/qsweep-bench-watch against it: one sweep of N jobs (default 1,000), W concurrent
WatchSweep streams (default 100), and C changes (default 200), each a Lease that moves one job
PENDING -> LEASED; the next change waits until every watcher has the job as LEASED. Latency is
measured from just before the Lease call (so it includes the Lease RPC and its group commit) to
the moment each watcher has read the event. Server CPU time (/proc/PID/stat) is read around each
phase, and the figures are printed as ratios against the same run without watchers:

  idle      3 s with nothing happening: 0 watchers vs W watchers
  changes   C changes: 0 watchers vs W watchers (the cost of telling W watchers)

Issue 8 target: p50 < 20 ms on loopback, and W = 100 watchers of a 1,000-job sweep cost the
server little CPU (before: every watcher listed every job every 500 ms).

With --baseline-server BIN, another qsweep-server binary (e.g. a build whose WatchSweep lists every
job every 500 ms) is measured the same way in the same run, and the figures are printed as ratios
against it too.

  /usr/bin/python3 bench/watch_latency.py [--jobs 1000] [--watchers 100] [--changes 200] [--quick]
      [--baseline-server OTHER/qsweep-server]
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


def run(a, server_bin):
    """Starts `server_bin` on a fresh database and runs qsweep-bench-watch against it."""
    tmp = tempfile.mkdtemp(prefix="qsweep-watch-")
    addr = f"127.0.0.1:{bench_service.free_port()}"
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen([server_bin, "--listen", addr, "--db", os.path.join(tmp, "q.db"),
                               "--no-serve-datasets", "--lease-ttl-ms", "600000"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        user, worker = bench_service.wait_and_make_tokens(a.build, server, addr, tmp, tmp,
                                                          log.name)
        out = subprocess.run([os.path.join(a.build, "bench", "qsweep-bench-watch"),
                              "--server", addr, "--server-pid", str(server.pid),
                              "--user-token-file", user, "--worker-token-file", worker,
                              "--jobs", str(a.jobs), "--watchers", str(a.watchers),
                              "--changes", str(a.changes), "--idle-seconds", str(a.idle_seconds)],
                             check=True, capture_output=True, text=True, timeout=1800).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def ratio(x, base):
    """x / base, or None when the base is 0 (CPU time is counted in 10 ms ticks)."""
    return x / base if base > 0 else None


def fmt(r, digits=2):
    return "n/a (0 base)" if r is None else f"{r:.{digits}f}x"


def rounded(r, digits=2):
    return None if r is None else round(r, digits)


def report(name, r):
    w, c = r["watchers"], r["changes"]
    print(f"{name}: {w} watchers of a {r['jobs']}-job sweep, {c} state changes (Lease), loopback:")
    print(f"  change -> each watcher:      p50 {r['latency_p50_ms']:7.2f} ms  "
          f"p99 {r['latency_p99_ms']:7.2f} ms  max {r['latency_max_ms']:7.2f} ms  "
          f"(target p50 < 20 ms: {'met' if r['latency_p50_ms'] < 20 else 'NOT met'})")
    print(f"  change -> all {w} watchers:  p50 {r['all_watchers_p50_ms']:7.2f} ms  "
          f"p99 {r['all_watchers_p99_ms']:7.2f} ms")
    r["cpu_idle_ratio"] = rounded(ratio(r["cpu_idle_w_s"], r["cpu_idle_0_s"]))
    r["cpu_changes_ratio"] = rounded(ratio(r["cpu_changes_w_s"], r["cpu_changes_0_s"]))
    r["cpu_us_per_change_per_watcher"] = round(
        (r["cpu_changes_w_s"] - r["cpu_changes_0_s"]) / (w * c) * 1e6 if w and c else 0, 2)
    print(f"  server CPU, {r['idle_seconds']:.0f} s idle:         {r['cpu_idle_0_s']:.3f} s with 0 "
          f"watchers, {r['cpu_idle_w_s']:.3f} s with {w} ({fmt(r['cpu_idle_ratio'])})")
    print(f"  server CPU, {c} changes:     {r['cpu_changes_0_s']:.3f} s with 0 watchers, "
          f"{r['cpu_changes_w_s']:.3f} s with {w} ({fmt(r['cpu_changes_ratio'])}; "
          f"{r['cpu_us_per_change_per_watcher']:.1f} us per change per watcher)")
    print(f"  server CPU, first look:      {r['cpu_first_look_s']:.3f} s to send {r['jobs']} jobs "
          f"to each of {w} watchers", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--baseline-server", default="",
                    help="another qsweep-server binary (e.g. one whose WatchSweep polls every "
                         "500 ms) measured the same way in the same run")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="50 changes, 1 s idle phases")
    a = ap.parse_args()
    if a.quick:
        a.changes, a.idle_seconds = 50, 1.0
    r = run(a, os.path.join(a.build, "qsweep-server"))
    report("qsweep-server", r)
    summary = {"server": r}
    if a.baseline_server:
        b = run(a, a.baseline_server)
        report(f"baseline {a.baseline_server}", b)
        summary["baseline"] = b
        summary["vs_baseline"] = {
            "latency_p50": rounded(ratio(r["latency_p50_ms"], b["latency_p50_ms"]), 3),
            "cpu_idle_with_watchers": rounded(ratio(r["cpu_idle_w_s"], b["cpu_idle_w_s"]), 3),
            "cpu_changes_with_watchers": rounded(ratio(r["cpu_changes_w_s"], b["cpu_changes_w_s"]),
                                                 3),
        }
        v = summary["vs_baseline"]
        print(f"vs baseline: latency p50 {fmt(v['latency_p50'], 3)}, server CPU with "
              f"{a.watchers} watchers idle {fmt(v['cpu_idle_with_watchers'], 3)}, during changes "
              f"{fmt(v['cpu_changes_with_watchers'], 3)}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
