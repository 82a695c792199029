#!/usr/bin/python3
"""Training throughput: qsweep's trainer against the Python PyTorch reference.

Both train the same model on the same rows (qsweep's jsc-synthetic train split,
exported to CSV for the reference), with the same batch size and epochs, one
thread each. Prints samples/s for the reference, for qsweep's autograd loop
(TrainOptions::use_autograd, the trainer before the packed engine) and for
TrainModel's default (the packed engine, a pack of one), with the ratios
qsweep / reference and packed / autograd, for jsc-toy and the Lab-1 10x model
(16-64-40-10-5, BN+ReLU) at batch sizes 64, 256 and 1024. The data is
SYNTHETIC (jsc-synthetic); only throughput is compared here. Targets
(issue 10): jsc-toy >= 4x the reference at batch 64, >= 5x at 256.

  /usr/bin/python3 bench/train_throughput.py [--build build] [--rows 100000] [--epochs 3]
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reference", default=DEFAULT_REFERENCE)
    ap.add_argument("--rows", type=int, default=100000, help="synthetic rows before the 80/20 split")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-sizes", default="64,256,1024")
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

    rows = []
    print(f"{'model':<10} {'batch':>6} {'reference/s':>12} {'autograd/s':>12} {'qsweep/s':>12} "
          f"{'vs ref':>7} {'vs autograd':>11}")
    for name in a.models.split(","):
        ref_args, qsweep_model = models[name]
        for bs in [int(b) for b in a.batch_sizes.split(",")]:
            ref = run_json(["/usr/bin/python3", a.reference, *ref_args, "--csv", csv,
                            "--batch-size", str(bs), "--epochs", str(a.epochs), "--threads", "1",
                            "--lr", "1e-3"], env)
            common = [bench, "--model", qsweep_model, "--synthetic-rows", str(a.rows),
                      "--batch-size", str(bs), "--epochs", str(a.epochs), "--threads", "1"]
            ours = run_json(common + ["--engine", "packed"], env)
            autograd = run_json(common + ["--engine", "autograd"], env)
            assert ref["rows"] == ours["rows"], (ref["rows"], ours["rows"])
            assert ref["params"] == ours["params"], (ref["params"], ours["params"])
            ratio = ours["samples_per_second_median"] / ref["samples_per_second_median"]
            vs_autograd = ours["samples_per_second_median"] / autograd["samples_per_second_median"]
            rows.append({"model": name, "batch_size": bs, "params": ours["params"],
                         "rows": ours["rows"],
                         "reference_sps": ref["samples_per_second_median"],
                         "autograd_sps": round(autograd["samples_per_second_median"]),
                         "qsweep_sps": round(ours["samples_per_second_median"]),
                         "ratio": round(ratio, 2),
                         "ratio_vs_autograd": round(vs_autograd, 2)})
            print(f"{name:<10} {bs:>6} {ref['samples_per_second_median']:>12.0f} "
                  f"{autograd['samples_per_second_median']:>12.0f} "
                  f"{ours['samples_per_second_median']:>12.0f} {ratio:>6.2f}x {vs_autograd:>10.2f}x",
                  flush=True)
    worst = min(r["ratio"] for r in rows)
    targets = {64: 4.0, 256: 5.0}
    for r in rows:
        if r["model"] == "jsc-toy" and r["batch_size"] in targets:
            t = targets[r["batch_size"]]
            print(f"jsc-toy batch {r['batch_size']}: {r['ratio']:.2f}x the reference "
                  f"(target >= {t:g}x): {'met' if r['ratio'] >= t else 'NOT met'}")
    print(f"minimum ratio {worst:.2f}x; data: jsc-synthetic (SYNTHETIC), "
          f"{rows[0]['rows']} training rows, {a.epochs} epochs, 1 thread each")
    print(json.dumps({"results": rows, "min_ratio": worst}))


if __name__ == "__main__":
    main()
