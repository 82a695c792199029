"""What the training-throughput benchmarks (train_throughput.py, packed_throughput.py) share:
the paths, the common flags, the training rows exported to CSV for the Python PyTorch
reference, the models, and the commands that run the reference and qsweep-bench-train (each
prints one JSON line last)."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_REFERENCE = os.path.join(os.path.dirname(ROOT), "shared", "bench", "torch_reference.py")
# name -> (the reference's model flags, qsweep-bench-train's --model)
MODELS = {"jsc-toy": (["--model", "jsc-toy"], "jsc-toy"),
          "10x": (["--model", "mlp", "--hidden", "64,40,10"],
                  os.path.join(ROOT, "examples", "models", "jsc-10x.toml"))}


def run_json(cmd, env):
    """Runs `cmd`; the JSON object on the last line of its stdout."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def add_common_args(ap, rows, epochs, batch_sizes):
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reference", default=DEFAULT_REFERENCE)
    ap.add_argument("--rows", type=int, default=rows, help="synthetic rows before the 80/20 split")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-sizes", default=batch_sizes)
    ap.add_argument("--models", default=",".join(MODELS))


class Setup:
    """The built programs, a private data folder, one thread each, and the jsc-synthetic train
    split exported to CSV for the reference."""

    def __init__(self, a):
        self.args = a
        qsweep = os.path.join(a.build, "qsweep")
        self.bench = os.path.join(a.build, "bench", "qsweep-bench-train")
        for path in (qsweep, self.bench, a.reference):
            if not os.path.exists(path):
                sys.exit(f"missing {path}: build qsweep first (deploy/build.sh)")
        tmp = tempfile.mkdtemp(prefix="qsweep-bench-")
        self.env = dict(os.environ, QSWEEP_DATA_DIR=os.path.join(tmp, "data"), OMP_NUM_THREADS="1")
        self.csv = os.path.join(tmp, "train.csv")
        subprocess.run([qsweep, "data", "export", "jsc-synthetic", "--split", "train", "--format",
                        "csv", "--synthetic-rows", str(a.rows), "-o", self.csv], check=True,
                       env=self.env, stdout=subprocess.DEVNULL)

    def models(self):
        """(name, reference model flags, qsweep model) for each --models entry."""
        return [(name, *MODELS[name]) for name in self.args.models.split(",")]

    def batch_sizes(self):
        return [int(b) for b in self.args.batch_sizes.split(",")]

    def reference(self, ref_args, batch_size):
        """torch_reference.py's result for one trial (Adam, lr 1e-3, one thread)."""
        a = self.args
        return run_json(["/usr/bin/python3", a.reference, *ref_args, "--csv", self.csv,
                         "--batch-size", str(batch_size), "--epochs", str(a.epochs), "--threads",
                         "1", "--lr", "1e-3"], self.env)

    def bench_command(self, qsweep_model, batch_size, *extra):
        """qsweep-bench-train on the same rows, batch size and epochs, one thread."""
        a = self.args
        return [self.bench, "--model", qsweep_model, "--synthetic-rows", str(a.rows),
                "--batch-size", str(batch_size), "--epochs", str(a.epochs), "--threads", "1",
                *extra]
