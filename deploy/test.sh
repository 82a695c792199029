#!/usr/bin/env bash
# Quick start command 2: installs what is needed, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup-debian.sh
start=$(date +%s)
./deploy/build.sh build
built=$(date +%s)
cd build
ctest --output-on-failure -j "${QSWEEP_JOBS:-$(nproc)}" --timeout 600
done_=$(date +%s)
echo "qsweep: build $((built - start)) s, tests $((done_ - built)) s"
