#!/usr/bin/env bash
# The main job on an already built tree: trains jsc-toy locally on the real JSC
# file when it has been fetched (qsweep data fetch jsc), else on the generated
# jsc-synthetic dataset (SYNTHETIC data; its accuracies are not JSC results).
set -euo pipefail
cd "$(dirname "$0")/.."
QSWEEP=./build/qsweep
DATASET=jsc-synthetic
if "$QSWEEP" data info jsc >/dev/null 2>&1; then DATASET=jsc; fi
exec "$QSWEEP" train jsc-toy "$DATASET" --max-epochs 10 --batch-size 256 \
  --learning-rate 1e-3 --project lab1-quickstart "$@"
