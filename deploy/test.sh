#!/usr/bin/env bash
# Quick start command 2: installs what is needed, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup-debian.sh
start=$(date +%s)
./deploy/build.sh build
built=$(date +%s)
cd build
# A skipped test is a check that did not happen: the run fails unless it is
# listed in tests/expected_skips.txt (empty).
ctest --output-on-failure -j "${QSWEEP_JOBS:-$(nproc)}" --timeout 600 --output-junit ctest-junit.xml
/usr/bin/python3 ../deploy/check_skips.py ctest-junit.xml ../tests/expected_skips.txt
done_=$(date +%s)
# libFuzzer targets (fuzz/README.md): a separate clang build, each target run
# for QSWEEP_FUZZ_SECONDS (default 30) from its seed corpus; a crash fails.
cd ..
QSWEEP_FUZZ_SECONDS="${QSWEEP_FUZZ_SECONDS:-30}" ./fuzz/run.sh
fuzzed=$(date +%s)
echo "qsweep: build $((built - start)) s, tests $((done_ - built)) s, fuzz $((fuzzed - done_)) s"
