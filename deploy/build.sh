#!/usr/bin/env bash
# Configures and builds qsweep with CMake + Ninja into ./build (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
JOBS="${QSWEEP_JOBS:-$(nproc)}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" >/dev/null
ninja -C "$BUILD_DIR" -j "$JOBS"
