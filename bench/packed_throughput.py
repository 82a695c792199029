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

from bench_common import Setup, add_common_args, run_json


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, rows=200000, epochs=2, batch_sizes="64,256")
    ap.add_argument("--trials", type=int, default=9)
    a = ap.parse_args()
    setup = Setup(a)

    k = a.trials
    rows = []
    print(f"{k} trials per pack, total training samples/s, 1 thread")
    print(f"{'model':<8} {'batch':>6} {'reference/s':>12} {'sequential/s':>13} {'packed/s':>12} "
          f"{'vs sequential':>14} {'vs reference':>13}")
    for name, ref_args, qsweep_model in setup.models():
        for bs in setup.batch_sizes():
            ref = setup.reference(ref_args, bs)
            common = setup.bench_command(qsweep_model, bs, "--trials", str(k))
            seq = run_json(common + ["--mode", "sequential"], setup.env)
            packed = run_json(common + ["--mode", "packed"], setup.env)
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
