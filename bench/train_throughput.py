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

from bench_common import Setup, add_common_args, run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, rows=100000, epochs=3, batch_sizes="64,256,1024")
    a = ap.parse_args()
    setup = Setup(a)

    rows = []
    print(f"{'model':<10} {'batch':>6} {'reference/s':>12} {'autograd/s':>12} {'qsweep/s':>12} "
          f"{'vs ref':>7} {'vs autograd':>11}")
    for name, ref_args, qsweep_model in setup.models():
        for bs in setup.batch_sizes():
            ref = setup.reference(ref_args, bs)
            common = setup.bench_command(qsweep_model, bs)
            ours = run_json(common + ["--engine", "packed"], setup.env)
            autograd = run_json(common + ["--engine", "autograd"], setup.env)
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
