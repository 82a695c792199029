#!/usr/bin/env bash
# Quick start command 1: installs what is needed, builds, and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup-debian.sh
./deploy/build.sh build
exec ./deploy/run-main.sh
