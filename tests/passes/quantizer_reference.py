"""Independent numpy reference for qsweep's non-integer quantizers.

Usage: quantizer_reference.py OUT

Writes test cases to OUT, for tests/passes/quantizers_reference_test.cc. Each
case is three lines:
  case ARITH key=value ... shape=D1,D2     (unset optional fields are "-")
  the inputs (float32, hex floats, space-separated)
  what MASE's formula gives for them (float32, hex floats)
The inputs are chosen from each format's own grid: every representable value
and its negation, the midpoints between neighbours (round-half-to-even ties)
and one float32 ulp either side, values past the largest one (saturation),
below the smallest (underflow to zero), zero, -0, and random values across the
range.

The formulas are those of MASE.md section 5.3, written here without looking at
qsweep's C++:
- minifloat_ieee: the representable values are enumerated (0; subnormals
  k/2^m * 2^(1-bias); normals (1 + k/2^m) * 2^E for E in [1-bias, 2^e-1-bias]),
  and each input goes to the nearest one, ties to the even code, saturating.
- minifloat_denorm: E = clamp(ceil(log2|x|), -bias, 2^e-1-bias), no implicit bit,
  mantissa clamp(round(|x|/2^E * 2^m), 0, 2^m-1).
- log: e = clamp(round(log2(|x| + 0.1*2^emin)), emin, emax), sign * 2^e, no zero.
- block_fp: per block of the trailing dimension, shared E = clamp(ceil(log2 max|x|)),
  mantissa clamp(round(|x|/2^E * 2^(w-1)), 0, 2^(w-1)-1).
- binary: x >= 0 -> 1, else -1 (bipolar) or 0.
- ternary: threshold 0.75*mean, else 0.05*max, else 0.75*median; x > t -> s,
  x < -t -> -s, else 0, with s = mean when scaling_factor, else 1.
round() is numpy's round half to even (torch.round).
"""
import sys

import numpy as np

F32 = np.float32


def default_bias(bits):
    return 2 ** (bits - 1) - 1


def signs(x):
    return np.where(np.signbit(x), -1.0, 1.0)


# ---- formulas ------------------------------------------------------------------------------


def ieee_grid(w, e, bias):
    m = w - e - 1
    bias = default_bias(e) if bias is None else bias
    vals = []
    for field in range(2 ** e):
        for k in range(2 ** m):
            if field == 0:
                vals.append(k / 2 ** m * 2.0 ** (1 - bias))
            else:
                vals.append((1 + k / 2 ** m) * 2.0 ** (field - bias))
    return np.array(vals)  # ascending; index == code


def minifloat_ieee(x, w, e, bias):
    grid = ieee_grid(w, e, bias)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(grid, a, side="left"), 0, len(grid) - 1)
    lo = np.clip(hi - 1, 0, len(grid) - 1)
    d_lo, d_hi = a - grid[lo], grid[hi] - a
    pick = np.where(d_lo < d_hi, lo, hi)
    pick = np.where(d_lo == d_hi, np.where(lo % 2 == 0, lo, hi), pick)
    pick = np.where(a >= grid[-1], len(grid) - 1, pick)  # saturate
    return signs(x) * grid[pick]


def minifloat_denorm(x, w, e, bias):
    m = w - e - 1
    bias = default_bias(e) if bias is None else bias
    a = np.abs(x)
    safe = np.where(a == 0, 1.0, a)
    E = np.clip(np.ceil(np.log2(safe)), -bias, 2 ** e - 1 - bias)
    k = np.clip(np.round(safe / 2.0 ** E * 2 ** m), 0, 2 ** m - 1)
    return np.where(a == 0, x, signs(x) * k / 2 ** m * 2.0 ** E)


def log_quant(x, w, bias):
    bits = w - 1
    bias = default_bias(bits) if bias is None else bias
    emin, emax = -bias, 2 ** bits - 1 - bias
    e = np.clip(np.round(np.log2(np.abs(x) + 0.1 * 2.0 ** emin)), emin, emax)
    return signs(x) * 2.0 ** e


def block_fp(x, shape, w, e, bias, block):
    bias = default_bias(e) if bias is None else bias
    emin, emax = -bias, 2 ** e - 1 - bias
    rows = x.reshape(-1, shape[-1])
    out = np.zeros_like(rows)
    scale = 2 ** (w - 1)
    for r in range(rows.shape[0]):
        for b0 in range(0, rows.shape[1], block):
            blk = rows[r, b0:b0 + block]
            amax = np.abs(blk).max()
            if amax == 0:
                continue
            E = np.clip(np.ceil(np.log2(amax)), emin, emax)
            k = np.clip(np.round(np.abs(blk) / 2.0 ** E * scale), 0, scale - 1)
            out[r, b0:b0 + block] = signs(blk) * k / scale * 2.0 ** E
    return out.reshape(-1)


def binary(x, bipolar):
    return np.where(x >= 0, 1.0, -1.0 if bipolar else 0.0)


def ternary(x, mean, median, mx, scaling):
    if mean is not None:
        t = 0.75 * mean
    elif mx is not None:
        t = 0.05 * mx
    else:
        t = 0.75 * median
    s = mean if scaling else 1.0
    return np.where(x > t, s, np.where(x < -t, -s, 0.0))


# ---- inputs --------------------------------------------------------------------------------


def f32(v):
    return np.asarray(v, dtype=np.float64).astype(F32)


def around(points, rng, lo, hi, n_random=200):
    """The points, their midpoints, +-1 ulp of each, their negations, edges, random."""
    p = np.unique(np.asarray(points, dtype=np.float64))
    mids = (p[:-1] + p[1:]) / 2
    base = np.concatenate([p, mids, p * 1.5, [hi * 1.01, hi * 4, hi * 1e6, lo / 2, lo / 3, lo * 0.51]])
    base = f32(base[np.isfinite(base)])
    up = np.nextafter(base, F32(np.inf))
    down = np.nextafter(base, F32(0))
    mag = np.exp(rng.uniform(np.log(lo / 4), np.log(hi * 2), n_random))
    rand = f32(mag)
    allv = np.concatenate([base, up, down, rand, [F32(0)]])
    allv = allv[np.isfinite(allv)]
    return np.concatenate([allv, -allv, [F32(-0.0)]]).astype(F32)


def hexs(a):
    return " ".join(float(v).hex() for v in a)


def main():
    out_path = sys.argv[1]
    rng = np.random.default_rng(8)
    cases = []

    def add(arith, fields, shape, x, y):
        x = np.asarray(x, dtype=F32)
        y = np.asarray(y, dtype=np.float64)
        assert x.size == int(np.prod(shape)) and y.size == x.size
        spec = " ".join(f"{k}={'-' if v is None else v}" for k, v in fields.items())
        cases.append(f"case {arith} {spec} shape={','.join(map(str, shape))}\n"
                     f"{hexs(x)}\n{hexs(y.astype(F32))}\n")

    for w, e, bias in [(8, 4, None), (8, 5, None), (6, 3, 2), (4, 2, None), (8, 4, 9)]:
        grid = ieee_grid(w, e, bias)
        x = around(grid, rng, grid[1], grid[-1])
        add("minifloat_ieee", {"width": w, "exponent_width": e, "exponent_bias": bias},
            (x.size,), x, minifloat_ieee(x.astype(np.float64), w, e, bias))

    for w, e, bias in [(8, 4, None), (6, 3, None), (8, 3, 5), (5, 2, None)]:
        m = w - e - 1
        b = default_bias(e) if bias is None else bias
        pts = [k / 2 ** m * 2.0 ** E for E in range(-b, 2 ** e - b) for k in range(2 ** m)]
        pts = [p for p in pts if p > 0]
        x = around(pts, rng, min(pts), max(pts))
        add("minifloat_denorm", {"width": w, "exponent_width": e, "exponent_bias": bias},
            (x.size,), x, minifloat_denorm(x.astype(np.float64), w, e, bias))

    for w, bias in [(4, None), (5, 6), (8, None), (3, None)]:
        bits = w - 1
        b = default_bias(bits) if bias is None else bias
        pts = [2.0 ** k for k in range(-b, 2 ** bits - b)]
        # log-domain ties: 2^(k + 0.5) lies between two outputs
        pts += [2.0 ** (k + 0.5) for k in range(-b, 2 ** bits - b)]
        x = around(pts, rng, 2.0 ** -b, 2.0 ** (2 ** bits - 1 - b))
        add("log", {"width": w, "exponent_bias": bias}, (x.size,), x,
            log_quant(x.astype(np.float64), w, bias))

    for w, e, bias, block, cols in [(8, 8, None, 16, 40), (4, 4, None, 4, 10), (6, 3, 1, 5, 12),
                                    (12, 8, None, 16, 16)]:
        rows_n = 24
        x = np.zeros((rows_n, cols), dtype=F32)
        for r in range(rows_n):
            scale = 2.0 ** rng.integers(-12, 12)
            row = rng.normal(0, 1, cols) * scale
            if r % 6 == 1:
                row[rng.integers(cols)] = scale  # an exact power of two sets the exponent
            if r % 6 == 2:
                row[:] = 0  # all-zero blocks
            if r % 6 == 3:
                row *= 1e-30  # below the exponent range: clamped
            if r % 6 == 4:
                row *= 1e30  # above it: saturates
            if r % 6 == 5:  # mantissa ties: k + 0.5 steps of the block's grid
                amax = np.abs(row).max()
                E = np.ceil(np.log2(amax))
                step = 2.0 ** E / 2 ** (w - 1)
                row = (np.round(row / step) + 0.5 * np.sign(row)) * step
            x[r] = f32(row)
        add("block_fp", {"width": w, "exponent_width": e, "exponent_bias": bias, "block": block},
            (rows_n, cols), x.reshape(-1),
            block_fp(x.reshape(-1).astype(np.float64), (rows_n, cols), w, e, bias, block))

    xb = around([1e-30, 1e-3, 0.5, 1, 100], rng, 1e-30, 100)
    for bipolar in (1, 0):
        add("binary", {"width": 1, "bipolar": bipolar}, (xb.size,), xb,
            binary(xb.astype(np.float64), bipolar))

    for mean, median, mx, scaling in [(0.5, None, None, 0), (0.5, None, None, 1),
                                      (None, None, 2.0, 0), (None, 0.8, None, 0),
                                      (0.4, 0.8, 2.0, 1)]:
        t = 0.75 * mean if mean is not None else (0.05 * mx if mx is not None else 0.75 * median)
        xt = around([t / 2, t, t * 2, 1.0], rng, t / 100, 10)
        add("ternary", {"width": 2, "mean": mean, "median": median, "max": mx,
                        "scaling_factor": scaling}, (xt.size,), xt,
            ternary(xt.astype(np.float64), mean, median, mx, scaling))

    with open(out_path, "w") as f:
        f.writelines(cases)
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
