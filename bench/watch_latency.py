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

  /usr/bin/python3 bench/watch_latency.py [--jobs 1000] [--watchers 100] [--changes 200] [--quick]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="50 changes, 1 s idle phases")
    a = ap.parse_args()
    if a.quick:
        a.changes, a.idle_seconds = 50, 1.0
    tmp = tempfile.mkdtemp(prefix="qsweep-watch-")
    addr = f"127.0.0.1:{free_port()}"
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen([os.path.join(a.build, "qsweep-server"), "--listen", addr,
                               "--db", os.path.join(tmp, "q.db"), "--no-serve-datasets",
                               "--lease-ttl-ms", "600000"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        admin = os.path.join(tmp, "admin.token")
        qsweep = os.path.join(a.build, "qsweep")

        def cli(*args):
            return subprocess.run([qsweep, *args, "--server", addr, "--token-file", admin],
                                  capture_output=True, text=True, timeout=60)
        deadline = time.time() + 30
        while not (os.path.exists(admin) and cli("workers").returncode == 0):
            if server.poll() is not None or time.time() > deadline:
                sys.exit(f"qsweep-server did not start; see {log.name}")
            time.sleep(0.1)
        user, worker = os.path.join(tmp, "user.token"), os.path.join(tmp, "worker.token")
        for role, path in (("user", user), ("worker", worker)):
            args = ["token", "create", "--role", role, "-o", path]
            if role == "user":
                args += ["--owner", "bench"]
            r = cli(*args)
            if r.returncode != 0:
                sys.exit(f"qsweep token create --role {role}: {r.stderr}")
        out = subprocess.run([os.path.join(a.build, "bench", "qsweep-bench-watch"),
                              "--server", addr, "--server-pid", str(server.pid),
                              "--user-token-file", user, "--worker-token-file", worker,
                              "--jobs", str(a.jobs), "--watchers", str(a.watchers),
                              "--changes", str(a.changes), "--idle-seconds", str(a.idle_seconds)],
                             check=True, capture_output=True, text=True, timeout=1800).stdout
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    w, c = r["watchers"], r["changes"]
    print(f"{w} watchers of a {r['jobs']}-job sweep, {c} state changes (Lease), loopback:")
    print(f"  change -> each watcher:      p50 {r['latency_p50_ms']:7.2f} ms  "
          f"p99 {r['latency_p99_ms']:7.2f} ms  max {r['latency_max_ms']:7.2f} ms  "
          f"(target p50 < 20 ms: {'met' if r['latency_p50_ms'] < 20 else 'NOT met'})")
    print(f"  change -> all {w} watchers:  p50 {r['all_watchers_p50_ms']:7.2f} ms  "
          f"p99 {r['all_watchers_p99_ms']:7.2f} ms")

    def ratio(x, base):
        return x / base if base > 0 else float("inf") if x > 0 else 1.0
    idle_ratio = ratio(r["cpu_idle_w_s"], r["cpu_idle_0_s"])
    change_ratio = ratio(r["cpu_changes_w_s"], r["cpu_changes_0_s"])
    per_watcher_change_us = ((r["cpu_changes_w_s"] - r["cpu_changes_0_s"]) / (w * c) * 1e6
                             if w and c else 0)
    print(f"  server CPU, {r['idle_seconds']:.0f} s idle:      {r['cpu_idle_0_s']:.3f} s with 0 "
          f"watchers, {r['cpu_idle_w_s']:.3f} s with {w} ({idle_ratio:.2f}x)")
    print(f"  server CPU, {c} changes:     {r['cpu_changes_0_s']:.3f} s with 0 watchers, "
          f"{r['cpu_changes_w_s']:.3f} s with {w} ({change_ratio:.2f}x; "
          f"{per_watcher_change_us:.1f} us per change per watcher)")
    print(f"  server CPU, first look:      {r['cpu_first_look_s']:.3f} s to send {r['jobs']} jobs "
          f"to each of {w} watchers")
    summary = dict(r, cpu_idle_ratio=round(idle_ratio, 2), cpu_changes_ratio=round(change_ratio, 2),
                   cpu_us_per_change_per_watcher=round(per_watcher_change_us, 2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
