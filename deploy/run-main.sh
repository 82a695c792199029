#!/usr/bin/env bash
# The main job on an already built tree: the Lab-1 sweep (batch size x epochs x
# learning rate, 27 jsc-toy trials) on the embedded default — a local
# qsweep-server with local workers and an SQLite file — then the results table
# and the accuracy curves. Uses the real JSC file when it has been fetched
# (qsweep data fetch jsc), otherwise jsc-synthetic (SYNTHETIC data: its
# accuracies are not JSC results).
#
#   deploy/run-main.sh [SWEEP.toml]      (default examples/lab1.toml)
# Environment: QSWEEP_SERVER (default 127.0.0.1:7420), QSWEEP_WORKERS (default: cores).
set -euo pipefail
cd "$(dirname "$0")/.."
QSWEEP="$PWD/build/qsweep"
SWEEP="${1:-examples/lab1.toml}"
export QSWEEP_SERVER="${QSWEEP_SERVER:-127.0.0.1:7420}"
WORKERS="${QSWEEP_WORKERS:-$(nproc)}"
OUT="${QSWEEP_OUT:-qsweep_output/lab1}"
mkdir -p "$OUT"

if "$QSWEEP" data info jsc >/dev/null 2>&1; then
  sed 's/^dataset = "jsc-synthetic"/dataset = "jsc"/' "$SWEEP" > "$OUT/sweep.toml"
  echo "qsweep: using the real JSC dataset"
else
  cp "$SWEEP" "$OUT/sweep.toml"
  echo "qsweep: the real JSC file is not here (qsweep data fetch jsc); using jsc-synthetic (SYNTHETIC data)"
fi

SERVER_PID=""
if "$QSWEEP" workers >/dev/null 2>&1; then
  echo "qsweep: using the server already running at $QSWEEP_SERVER"
else
  "$QSWEEP" up --listen "$QSWEEP_SERVER" --local-workers "$WORKERS" > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    "$QSWEEP" workers >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
    sleep 0.3
  done
  echo "qsweep: started a coordinator at $QSWEEP_SERVER with $WORKERS local workers (log: $OUT/server.log)"
fi

SUBMITTED=$("$QSWEEP" submit "$OUT/sweep.toml")
echo "$SUBMITTED"
SWEEP_ID=$(echo "$SUBMITTED" | grep -o 'sw-[0-9a-f]*' | head -n 1)
"$QSWEEP" watch "$SWEEP_ID"
"$QSWEEP" jobs "$SWEEP_ID" --sort test_acc_epoch
"$QSWEEP" jobs "$SWEEP_ID" --format csv > "$OUT/results.csv"
"$QSWEEP" plot "$SWEEP_ID" --metric val_acc_epoch -o "$OUT/val_acc.png" || true
"$QSWEEP" plot "$SWEEP_ID" --metric train_loss_step -o "$OUT/train_loss.png" || true
echo "qsweep: results in $OUT (results.csv, val_acc.png, train_loss.png); sweep $SWEEP_ID"
