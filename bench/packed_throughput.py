#!/usr/bin/python3
"""Packed training throughput: K trials trained as one pack against the same K trials one after
another, with the same trainer, and against the Python PyTorch reference extrapolated.

All runs train on the same rows (qsweep's jsc-synthetic train split, exported to CSV for the
reference), one thread each. The K trials differ in seed and learning rate (lr * 1, 0.5, 0.25 in
turn), as a sweep's trials do. Prints, per model and batch size, total training samples/s of:
  reference   torch_reference.py for one trial (K trials one after another in Python train at
              the same samples/s, so its figure stands for all K),
  sequential  qsweep, the K trials one after another (TrainModel each: a pack of one),
  packed      qsweep, the K trials as one pack (TrainPacked),
and the ratios packed / sequential and packed / reference. The data is SYNTHETIC.

  /usr/bin/python3 bench/packed_throughput.py [--build build] [--trials 9] [--rows 200000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_REFERENCE = os.path.join(os.path.dirname(ROOT), "shared", "bench", "torch_reference.py")


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reference", default=DEFAULT_REFERENCE)
    ap.add_argument("--rows", type=int, default=200000, help="synthetic rows before the 80/20 split")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--trials", type=int, default=9)
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--models", default="jsc-toy,10x")
    a = ap.parse_args()

    qsweep = os.path.join(a.build, "qsweep")
    bench = os.path.join(a.build, "bench", "qsweep-bench-train")
    for path in (qsweep, bench, a.reference):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: build qsweep first (deploy/build.sh)")
    tmp = tempfile.mkdtemp(prefix="qsweep-bench-")
    env = dict(os.environ, QSWEEP_DATA_DIR=os.path.join(tmp, "data"), OMP_NUM_THREADS="1")
    csv = os.path.join(tmp, "train.csv")
    subprocess.run([qsweep, "data", "export", "jsc-synthetic", "--split", "train", "--format", "csv",
                    "--synthetic-rows", str(a.rows), "-o", csv], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    tenx = os.path.join(ROOT, "examples", "models", "jsc-10x.toml")
    models = {"jsc-toy": (["--model", "jsc-toy"], "jsc-toy"),
              "10x": (["--model", "mlp", "--hidden", "64,40,10"], tenx)}

    k = a.trials
    rows = []
    print(f"{k} trials per pack, total training samples/s, 1 thread")
    print(f"{'model':<8} {'batch':>6} {'reference/s':>12} {'sequential/s':>13} {'packed/s':>12} "
          f"{'vs sequential':>14} {'vs reference':>13}")
    for name in a.models.split(","):
        ref_args, qsweep_model = models[name]
        for bs in [int(b) for b in a.batch_sizes.split(",")]:
            ref = run_json(["/usr/bin/python3", a.reference, *ref_args, "--csv", csv,
                            "--batch-size", str(bs), "--epochs", str(a.epochs), "--threads", "1",
                            "--lr", "1e-3"], env)
            common = [bench, "--model", qsweep_model, "--synthetic-rows", str(a.rows),
                      "--batch-size", str(bs), "--epochs", str(a.epochs), "--threads", "1",
                      "--trials", str(k)]
            seq = run_json(common + ["--mode", "sequential"], env)
            packed = run_json(common + ["--mode", "packed"], env)
            assert ref["rows"] == packed["rows"], (ref["rows"], packed["rows"])
            r_sps = ref["samples_per_second_median"]
            s_sps = seq["samples_per_second_median"]
            p_sps = packed["samples_per_second_median"]
            rows.append({"model": name, "batch_size": bs, "trials": k, "rows": packed["rows"],
                         "reference_sps": round(r_sps), "sequential_sps": round(s_sps),
                         "packed_sps": round(p_sps),
                         "packed_vs_sequential": round(p_sps / s_sps, 2),
                         "packed_vs_reference": round(p_sps / r_sps, 2)})
            print(f"{name:<8} {bs:>6} {r_sps:>12.0f} {s_sps:>13.0f} {p_sps:>12.0f} "
                  f"{p_sps / s_sps:>13.2f}x {p_sps / r_sps:>12.2f}x", flush=True)
    print(f"data: jsc-synthetic (SYNTHETIC), {rows[0]['rows']} training rows, {a.epochs} epochs; "
          f"reference extrapolated: {k} trials one after another at its one-trial samples/s")
    print(json.dumps({"results": rows}))


if __name__ == "__main__":
    main()
