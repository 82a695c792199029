// A /usr/bin/python3 (numpy + h5py) script that writes a small JSC file in
// the real layouts and, independently of qsweep, the expected result of
// MASE's preprocessing (dedup over the 21 columns, sklearn-identical split
// via RandomState(42).permutation, StandardScaler with population std).
//   argv: OUT_PREFIX ROWS SEED FORMAT(h5|csv)
// Writes OUT_PREFIX.{h5|csv} and OUT_PREFIX.{xtr,ytr,xte,yte,mean,std,nkept}.
#pragma once

namespace qsweep::testing {

inline constexpr char kJscReferenceScript[] = R"PY(
import math, sys
import numpy as np
out, n, seed, fmt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
feats = ["j_zlogz", "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt",
         "j_c2_b2_mmdt", "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt",
         "j_d2_a1_b2_mmdt", "j_m2_b1_mmdt", "j_m2_b2_mmdt", "j_n2_b1_mmdt",
         "j_n2_b2_mmdt", "j_mass_mmdt", "j_multiplicity"]
labs = ["j_g", "j_q", "j_w", "j_z", "j_t"]
rng = np.random.default_rng(seed)
X = (rng.normal(size=(n, 16)) * rng.uniform(0.5, 50, size=16) + rng.uniform(-5, 5, size=16)).astype(np.float32)
X[:, 1] = 0.5                                   # constant column: std 0 -> 1
X[:, 15] = rng.integers(1, 80, size=n)          # integer-valued multiplicity
y = rng.integers(0, 5, size=n)
for s, d in zip(rng.integers(0, n, size=n // 8), rng.integers(0, n, size=n // 8)):
    if d > s:                                   # exact duplicate rows
        X[d] = X[s]; y[d] = y[s]
X[n - 1] = X[0]; y[n - 1] = (y[0] + 1) % 5      # same features, other label: kept
Y = np.eye(5, dtype=np.float32)[y]
if fmt == "h5":
    import h5py
    fields = [(f, np.float32) for f in feats[:15]] + [("j_multiplicity", np.float64)]
    fields += [(l, np.float32) for l in labs] + [("j_pt", np.float64), ("j_index", np.int32)]
    order = rng.permutation(len(fields))        # fields stored in a shuffled order
    arr = np.zeros(n, dtype=[fields[i] for i in order])
    for i, f in enumerate(feats): arr[f] = X[:, i]
    for i, l in enumerate(labs): arr[l] = Y[:, i]
    arr["j_pt"] = rng.uniform(0, 1000, size=n); arr["j_index"] = np.arange(n)
    with h5py.File(out + ".h5", "w") as h:
        h.create_dataset("t_allpar_new", data=arr)
        h.create_dataset("other_table", data=np.arange(3))
    X64 = X.astype(np.float64)
else:
    letters = "gqwzt"                            # MASE index -> OpenML class string
    order = rng.permutation(16)
    with open(out + ".csv", "w") as f:
        f.write(",".join(feats[i][2:] for i in order) + ",class\n")
        for r in range(n):
            vals = ",".join("%.9g" % X[r, i] for i in order)
            lab = letters[y[r]]
            f.write(vals + "," + (("'%s'" % lab) if r % 2 else lab) + "\n")
    back = np.loadtxt(out + ".csv", delimiter=",", skiprows=1, usecols=range(16))
    X64 = np.empty((n, 16)); X64[:, order] = back
A = np.concatenate([X64, Y.astype(np.float64)], axis=1)
_, first = np.unique(A, axis=0, return_index=True)
keep = np.sort(first)
Xk, yk = X64[keep], y[keep]
nk = len(keep); nt = math.ceil(0.2 * nk)
perm = np.random.RandomState(42).permutation(nk)
te, tr = perm[:nt], perm[nt:]
mean = Xk[tr].mean(axis=0); std = Xk[tr].std(axis=0); std[std == 0] = 1.0
np.savetxt(out + ".xtr", ((Xk[tr] - mean) / std).astype(np.float32).ravel(), fmt="%.9g")
np.savetxt(out + ".xte", ((Xk[te] - mean) / std).astype(np.float32).ravel(), fmt="%.9g")
np.savetxt(out + ".ytr", yk[tr], fmt="%d"); np.savetxt(out + ".yte", yk[te], fmt="%d")
np.savetxt(out + ".mean", mean, fmt="%.17g"); np.savetxt(out + ".std", std, fmt="%.17g")
open(out + ".nkept", "w").write("%d %d\n" % (n, nk))
)PY";

}  // namespace qsweep::testing
