"""Independent reference for qsweep's quantized forward pass.

Usage: quant_reference.py STATE_DICT INPUT OUTPUT ROWS LAYERS W F
  STATE_DICT  plain dict of tensors written by qsweep (torch.load-able)
  INPUT       float32 rows x in_features, raw little-endian
  OUTPUT      float32 outputs qsweep computed for INPUT, raw
  LAYERS      comma list of bn|relu|linear (the sequential model, seq_blocks.<i>)
  W F         integer width and frac width applied to every linear's input,
              weight and bias (MASE.md §5.2: clamp(round_half_even(x*2^F),
              -2^(W-1), 2^(W-1)-1) / 2^F); relu inputs are not quantized.
Exits 0 when qsweep's outputs match the reference and differ from the float
model's; prints the maximum differences.
"""
import sys

import numpy as np
import torch


def q(x, w, f):
    s = 2.0 ** f
    return np.clip(np.round(x * s), -(2 ** (w - 1)), 2 ** (w - 1) - 1) / s


def forward(sd, x, layers, quant):
    w_, f_ = quant if quant else (None, None)
    for i, kind in enumerate(layers):
        p = f"seq_blocks.{i}."
        if kind == "bn":
            rm, rv = sd[p + "running_mean"], sd[p + "running_var"]
            x = (x - rm) / np.sqrt(rv + 1e-5) * sd[p + "weight"] + sd[p + "bias"]
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "linear":
            W, b = sd[p + "weight"], sd[p + "bias"]
            if quant:
                x, W, b = q(x, w_, f_), q(W, w_, f_), q(b, w_, f_)
            x = x @ W.T + b
        else:
            raise SystemExit(f"unknown layer {kind}")
    return x


def main():
    sd_path, in_path, out_path, rows, layers, w, f = sys.argv[1:8]
    rows, w, f = int(rows), int(w), int(f)
    sd = {k: v.detach().double().numpy() for k, v in torch.load(sd_path).items()}
    x = np.fromfile(in_path, dtype=np.float32).astype(np.float64).reshape(rows, -1)
    got = np.fromfile(out_path, dtype=np.float32).astype(np.float64).reshape(rows, -1)
    layers = layers.split(",")
    ref = forward(sd, x, layers, (w, f))
    flt = forward(sd, x, layers, None)
    err = np.abs(got - ref).max()
    gap = np.abs(got - flt).max()
    print(f"max |qsweep - reference| = {err:.3g}; max |qsweep - float model| = {gap:.3g}")
    if err > 1e-4:
        raise SystemExit("quantized outputs differ from the reference")
    if gap < 1e-3:
        raise SystemExit("quantized outputs equal the float model's: quantization inactive")


if __name__ == "__main__":
    main()
