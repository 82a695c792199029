#!/usr/bin/env bash
# What a GPU node needs, checked on one (issue 9 §5):
#  1. builds qsweep against the LibTorch found by CMake (a CUDA LibTorch 2.x:
#     TORCH_PREFIX=/opt/libtorch deploy/gpu-check.sh);
#  2. trains jsc-toy on cpu and on cuda:0 with the same seed and prints both
#     test accuracies and training samples/s;
#  3. runs a 4-trial sweep on one `qsweep-worker --gpus auto` and prints which
#     devices the worker reported and the trials' states.
#   deploy/gpu-check.sh [BUILD_DIR]    (default: build-gpu)
# Exit 0 when every step worked and both accuracies are within 0.02.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-gpu}"
prefix=()
[ -n "${TORCH_PREFIX:-}" ] && prefix=(-DCMAKE_PREFIX_PATH="$TORCH_PREFIX")
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "gpu-check: no nvidia-smi"
echo "gpu-check: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${prefix[@]}" > "$build.cmake.log"
ninja -C "$build" -j"$(nproc)" qsweep qsweep-worker qsweep-server > "$build.ninja.log"
W="$(mktemp -d /tmp/qsweep-gpu-check-XXXXXX)"
trap 'kill "${server_pid:-}" "${worker_pid:-}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

train() {  # device
  local start end
  start=$(date +%s.%N)
  "$build/qsweep" train jsc-toy jsc-synthetic --device "$1" --seed 7 --max-epochs 5 \
    --batch-size 256 --learning-rate 1e-3 --project-dir "$W/runs" --project "$1" \
    > "$W/train-$1.log" 2>&1 || { cat "$W/train-$1.log"; return 1; }
  end=$(date +%s.%N)
  # From what `qsweep train` prints: "... N samples/s" and the metrics table.
  /usr/bin/python3 - "$W/train-$1.log" "$1" "$start" "$end" "$W/acc-$1" <<'PY'
import re, sys
log, device, start, end, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
text = open(log).read()
sps = re.findall(r"([0-9.]+) samples/s", text)
acc = [re.findall(r"[0-9]+\.[0-9]+", l)[-1] for l in text.splitlines()
       if "test_acc_epoch" in l and re.findall(r"[0-9]+\.[0-9]+", l)]
print(f"gpu-check: {device}: test_acc {acc[-1] if acc else 'n/a'} samples/s "
      f"{sps[-1] if sps else 'n/a'} wall {end - start:.1f} s")
open(out, "w").write(acc[-1] if acc else "-1")
PY
}
train cpu
train cuda:0
/usr/bin/python3 - "$W/acc-cpu" "$W/acc-cuda:0" <<'PY'
import sys
a, b = (float(open(p).read()) for p in sys.argv[1:])
print(f"gpu-check: accuracy cpu {a:.4f} cuda:0 {b:.4f} (difference {abs(a - b):.4f})")
sys.exit(0 if a >= 0 and b >= 0 and abs(a - b) <= 0.02 else 1)
PY

"$build/qsweep-server" --listen 127.0.0.1:0 --db "$W/q.db" --port-file "$W/port" > "$W/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$W/port")"
q() { "$build/qsweep" "$@" --server "$addr" --token-file "$W/admin.token"; }
q token create --role worker -o "$W/worker.token" > /dev/null
"$build/qsweep-worker" --server "$addr" --token-file "$W/worker.token" --gpus auto \
  --idle-exit 30s > "$W/worker.log" 2>&1 &
worker_pid=$!
cat > "$W/sweep.toml" <<'TOML'
model = "jsc-toy"
dataset = "jsc-synthetic"
max_epochs = 3
batch_size = 256
[sweep.grid]
seed = [1, 2, 3, 4]
TOML
id="$(q submit "$W/sweep.toml" --format json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
start=$(date +%s)
timeout 900 "$build/qsweep" watch "$id" --server "$addr" --token-file "$W/admin.token" > /dev/null
echo "gpu-check: 4-trial sweep on --gpus auto took $(( $(date +%s) - start )) s"
q workers
q jobs "$id"
grep -- "--gpus auto" "$W/worker.log" || true
q jobs "$id" --format json | /usr/bin/python3 -c '
import json, sys
jobs = json.load(sys.stdin)
sys.exit(0 if len(jobs) == 4 and all(j["state"] == "SUCCEEDED" for j in jobs) else 1)'
echo "gpu-check: PASS"
