#!/usr/bin/python3
"""The Lab-1 sweep end to end: qsweep's embedded service against the Python loop.

Runs examples/lab1.toml (27 jsc-toy trials: batch size 64/256/1024 x 5/10/15 epochs x three
learning rates, on jsc-synthetic) through the embedded service: a qsweep-server with its local
workers (`qsweep up`'s default: as many as cores, each packing compatible trials), an SQLite
database in a fresh temporary folder. Prints the makespan (submit -> every trial finished, with a
validation and test pass every epoch). Then times the Python PyTorch reference
(../shared/bench/torch_reference.py: DataLoader loop, one thread, training only) for one epoch of
each batch size on the same exported training rows, extrapolates the 27 trials run one after
another, and prints both and the ratio (issue 10 target: >= 20x on a 2-core VM).

Accuracy: with --compare-unpacked the same sweep runs again with `[sweep] pack = false` (each
trial alone on a slot) and the largest |test_acc_epoch| difference per trial is printed; with
--compare FILE (a results JSON this script wrote with --save) the same against an earlier run.

  /usr/bin/python3 bench/lab1_sweep.py                 # the full Lab-1 sweep
  /usr/bin/python3 bench/lab1_sweep.py --quick --compare-unpacked   # smoke run, ~1 min
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_REFERENCE = os.path.join(os.path.dirname(ROOT), "shared", "bench", "torch_reference.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_text(quick_rows, epochs_scale, pack):
    with open(os.path.join(ROOT, "examples", "lab1.toml")) as f:
        text = f.read()
    if quick_rows:
        text = text.replace('dataset = "jsc-synthetic"',
                            f'dataset = "jsc-synthetic"\nsynthetic_rows = {quick_rows}')
    if epochs_scale != 1.0:
        def scale(m):
            vals = [max(1, round(int(v) * epochs_scale)) for v in m.group(1).split(",")]
            return "max_epochs = [" + ", ".join(str(v) for v in vals) + "]"
        text = re.sub(r"max_epochs = \[([0-9, ]+)\]", scale, text)
    if not pack:
        text = text.replace("[sweep]\n", "[sweep]\npack = false\n", 1)
    return text


def grid(text):
    def values(key):
        m = re.search(key + r" = \[([^\]]+)\]", text)
        return [float(v) for v in m.group(1).split(",")]
    return values("batch_size"), values("max_epochs"), values("learning_rate")


class Service:
    """qsweep-server --local-workers N on loopback with a temporary database and state dir."""

    def __init__(self, build, tmp, workers, env, worker_args=()):
        self.qsweep = os.path.join(build, "qsweep")
        self.env = env
        self.dir = os.path.join(tmp, "state")
        os.makedirs(self.dir)
        self.addr = f"127.0.0.1:{free_port()}"
        self.log = open(os.path.join(tmp, "server.log"), "w")
        worker = os.path.join(build, "qsweep-worker")
        if worker_args:  # the server starts its local workers with no extra flags: a wrapper
            wrapper = os.path.join(tmp, "qsweep-worker-wrapped")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (worker, " ".join(worker_args)))
            os.chmod(wrapper, 0o755)
            worker = wrapper
        self.proc = subprocess.Popen(
            [os.path.join(build, "qsweep-server"), "--listen", self.addr,
             "--db", os.path.join(self.dir, "q.db"), "--local-workers", str(workers),
             "--worker-binary", worker,
             "--data-dir", os.path.join(tmp, "server-data")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"qsweep-server exited; see {self.log.name}")
            token = os.path.join(self.dir, "admin.token")
            if os.path.exists(token) and self.cli(["workers"], check=False).returncode == 0:
                out = self.cli(["workers"]).stdout
                if out.count("cpu") >= workers:
                    break
            if time.time() > deadline:
                sys.exit(f"the server did not come up with {workers} workers; see {self.log.name}")
            time.sleep(0.2)

    def cli(self, args, check=True):
        cmd = [self.qsweep, *args, "--server", self.addr,
               "--token-file", os.path.join(self.dir, "admin.token")]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=check)

    def run_sweep(self, toml_path):
        t0 = time.perf_counter()
        out = self.cli(["submit", toml_path]).stdout
        sweep_id = re.search(r"sw-[0-9a-f]+", out).group(0)
        self.cli(["watch", sweep_id])
        makespan = time.perf_counter() - t0
        jobs = json.loads(self.cli(["jobs", sweep_id, "--format", "json"]).stdout)
        return sweep_id, makespan, jobs

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def trial_results(jobs):
    """index -> (state, test_acc_epoch) from `qsweep jobs --format json`."""
    rows = jobs["jobs"] if isinstance(jobs, dict) and "jobs" in jobs else jobs
    out = {}
    for j in rows:
        idx = int(j.get("index", str(j.get("id", "-0")).rsplit("-", 1)[-1]))
        metrics = j.get("final_metrics") or j.get("metrics") or {}
        acc = metrics.get("test_acc_epoch", j.get("test_acc_epoch"))
        out[idx] = (j.get("state"), None if acc is None else float(acc))
    return out


def max_diff(a, b):
    diffs = [abs(a[i][1] - b[i][1]) for i in a if i in b and a[i][1] is not None and
             b[i][1] is not None]
    return (max(diffs) if diffs else None), len(diffs)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reference", default=DEFAULT_REFERENCE)
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="local workers (default: cores, as `qsweep up`)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 40,000 rows and a fifth of the epochs")
    ap.add_argument("--epochs-scale", type=float, default=None,
                    help="scale every max_epochs value (at least 1); for profiling runs")
    ap.add_argument("--rows", type=int, default=None,
                    help="synthetic_rows of the data set (default: the full set)")
    ap.add_argument("--compare-unpacked", action="store_true",
                    help="run the sweep again with [sweep] pack = false and compare accuracies")
    ap.add_argument("--compare", help="results JSON of an earlier run (--save) to compare with")
    ap.add_argument("--save", help="write this run's results (JSON) here")
    ap.add_argument("--no-resume-states", action="store_true",
                    help="workers send no per-epoch resume state (to measure what they cost)")
    ap.add_argument("--resume-every",
                    help="the workers' --resume-every (default theirs: 10s; 0 = every epoch)")
    ap.add_argument("--dump-jobs", help="write `qsweep jobs --format json` of the sweep here")
    a = ap.parse_args()

    for path in (os.path.join(a.build, "qsweep"), os.path.join(a.build, "qsweep-server"),
                 os.path.join(a.build, "qsweep-worker"), a.reference):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: build qsweep first (deploy/build.sh)")
    rows = 40000 if a.quick else 0
    scale = 0.2 if a.quick else 1.0
    if a.rows is not None:
        rows = a.rows
    if a.epochs_scale is not None:
        scale = a.epochs_scale
    tmp = tempfile.mkdtemp(prefix="qsweep-lab1-")
    env = dict(os.environ, QSWEEP_DATA_DIR=os.path.join(tmp, "data"), OMP_NUM_THREADS="1")
    env.pop("QSWEEP_TOKEN_FILE", None)
    try:
        packed_toml = os.path.join(tmp, "lab1.toml")
        with open(packed_toml, "w") as f:
            f.write(sweep_text(rows, scale, pack=True))
        worker_args = ["--no-resume-states"] if a.no_resume_states else []
        if a.resume_every:
            worker_args += ["--resume-every", a.resume_every]
        svc = Service(a.build, tmp, a.workers, env, worker_args)
        try:
            sweep_id, makespan, jobs = svc.run_sweep(packed_toml)
            results = trial_results(jobs)
            if a.dump_jobs:
                with open(a.dump_jobs, "w") as f:
                    json.dump(jobs, f, indent=1)
            unpacked = None
            if a.compare_unpacked:
                alone_toml = os.path.join(tmp, "lab1-alone.toml")
                with open(alone_toml, "w") as f:
                    f.write(sweep_text(rows, scale, pack=False))
                _, makespan_alone, jobs_alone = svc.run_sweep(alone_toml)
                unpacked = (makespan_alone, trial_results(jobs_alone))
        finally:
            svc.stop()
        states = sorted({s for s, _ in results.values()})
        print(f"qsweep: sweep {sweep_id}: {len(results)} trials ({', '.join(states)}) "
              f"on {a.workers} local worker(s) in {makespan:.1f} s (makespan, submit to last "
              f"trial, val+test every epoch)", flush=True)

        # The reference: one epoch per batch size on the same rows, one thread.
        csv = os.path.join(tmp, "train.csv")
        export = [os.path.join(a.build, "qsweep"), "data", "export", "jsc-synthetic", "--split",
                  "train", "--format", "csv", "-o", csv]
        if rows:
            export += ["--synthetic-rows", str(rows)]
        subprocess.run(export, check=True, env=env, stdout=subprocess.DEVNULL)
        batch_sizes, epochs, lrs = grid(sweep_text(rows, scale, True))
        epoch_seconds = {}
        for bs in batch_sizes:
            out = subprocess.run(["/usr/bin/python3", a.reference, "--model", "jsc-toy", "--csv",
                                  csv, "--batch-size", str(int(bs)), "--epochs", "1",
                                  "--threads", "1", "--lr", "1e-3"],
                                 check=True, capture_output=True, text=True, env=env).stdout
            ref = json.loads(out.strip().splitlines()[-1])
            epoch_seconds[int(bs)] = ref["train_seconds"]
            print(f"reference: batch {int(bs):>5}: {ref['train_seconds']:.2f} s per epoch "
                  f"({ref['rows']} rows, {ref['samples_per_second_median']} samples/s)",
                  flush=True)
        sequential = sum(epoch_seconds[int(bs)] * e * len(lrs) for bs in batch_sizes
                         for e in epochs)
        ratio = sequential / makespan
        print(f"reference, {len(batch_sizes) * len(epochs) * len(lrs)} trials one after another "
              f"(extrapolated, training only): {sequential:.1f} s")
        full = not a.quick and not a.rows and a.epochs_scale in (None, 1.0)
        verdict = (f"target >= 20x on 2 cores: {'met' if ratio >= 20 else 'NOT met'}" if full else
                   "a reduced run: the target is for the full sweep")
        print(f"qsweep {makespan:.1f} s vs reference {sequential:.1f} s: {ratio:.1f}x ({verdict})")
        if unpacked:
            diff, n = max_diff(results, unpacked[1])
            print(f"unpacked run ([sweep] pack = false): {unpacked[0]:.1f} s; packing is "
                  f"{unpacked[0] / makespan:.2f}x faster; largest |test_acc_epoch| difference "
                  f"packed vs unpacked over {n} trials: {diff}")
        if a.compare:
            with open(a.compare) as f:
                earlier = {int(k): tuple(v) for k, v in json.load(f)["trials"].items()}
            diff, n = max_diff(results, earlier)
            print(f"largest |test_acc_epoch| difference vs {a.compare} over {n} trials: {diff}")
        summary = {"makespan_s": round(makespan, 2), "reference_sequential_s": round(sequential, 2),
                   "ratio": round(ratio, 2), "workers": a.workers, "quick": a.quick,
                   "reference_epoch_s": epoch_seconds,
                   "trials": {str(k): list(v) for k, v in sorted(results.items())}}
        if unpacked:
            summary["unpacked_makespan_s"] = round(unpacked[0], 2)
            summary["max_acc_diff_vs_unpacked"] = max_diff(results, unpacked[1])[0]
        if a.save:
            with open(a.save, "w") as f:
                json.dump(summary, f, indent=1)
        print(json.dumps({k: v for k, v in summary.items() if k != "trials"}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
