#!/usr/bin/env bash
# Installs every Debian 12 package qsweep needs to build, test and benchmark.
# Idempotent and non-interactive; run as root (or with sudo).
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache git
  clang libclang-rt-14-dev
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev libboost-system-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libhdf5-dev
  libssl-dev
  libopenblas0-openmp
  gnuplot-nox
  curl ca-certificates
  python3-torch python3-numpy python3-h5py python3-grpcio python3-protobuf python3-tabulate
  slurm-wlm munge python3-yaml systemd
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-debian: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup-debian: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}"
