#!/usr/bin/env bash
# Builds the qsweep-server and qsweep-worker images with podman (or docker)
# and smoke tests them: the server answers `qsweep-server --check`, a worker
# container registers, and one tiny trial runs on it.
#
#   deploy/container/build.sh [--build-dir DIR] [--libtorch DIR] [--tag TAG]
#                             [--engine podman|docker] [--no-smoke]
#
#   --build-dir DIR  the host build folder with qsweep, qsweep-server and
#                    qsweep-worker (default: build; built with ninja if stale)
#   --libtorch DIR   a site-provided LibTorch (e.g. a CUDA LibTorch 2.x,
#                    unzipped): the worker is built against it in
#                    DIR-build (next to --build-dir) and the image carries it.
#                    Default: Debian's CPU LibTorch 1.13.
#   --tag TAG        image tag (default: latest)
#   --no-smoke       build only
#
# No registry is used: the Debian 12 base images are made with mmdebstrap from
# the Debian mirror (only the runtime packages the binaries link, found with
# ldd + dpkg -S) and imported; they are reused while that package list stays
# the same. The binaries are built on the host (Debian 12, the same
# libraries) and copied in. podman runs with deploy/container/containers.conf
# (runc, lower ulimits) unless CONTAINERS_CONF is set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build"
libtorch=""
tag=latest
engine="${QSWEEP_CONTAINER_ENGINE:-}"
smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --libtorch) libtorch="$(cd "$2" && pwd)"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --engine) engine="$2"; shift 2 ;;
    --no-smoke) smoke=0; shift ;;
    *) echo "build.sh: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
build="$(mkdir -p "$build" && cd "$build" && pwd)"
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else echo "build.sh: neither podman nor docker found (apt-get install podman runc)" >&2; exit 1
  fi
fi
case "$engine" in
  podman) export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}" ;;
  docker) ;;
  *) echo "build.sh: --engine must be podman or docker, not '$engine'" >&2; exit 2 ;;
esac
command -v mmdebstrap >/dev/null \
  || { echo "build.sh: mmdebstrap missing (apt-get install mmdebstrap): it makes the base images" >&2; exit 1; }
t0=$(date +%s)
say() { echo "build.sh: $* ($(( $(date +%s) - t0 )) s)"; }

# --- binaries ---
if [ -n "$libtorch" ]; then
  [ -d "$libtorch/lib" ] && [ -d "$libtorch/share/cmake/Torch" ] \
    || { echo "build.sh: --libtorch $libtorch has no lib/ and share/cmake/Torch/" >&2; exit 2; }
  wbuild="$build-libtorch"
  cmake -S "$root" -B "$wbuild" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$libtorch/share/cmake" > /dev/null
  ninja -C "$wbuild" qsweep-worker qsweep
else
  wbuild="$build"
fi
[ -f "$build/build.ninja" ] \
  || cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
ninja -C "$build" qsweep qsweep-server qsweep-worker
say "binaries ready"

# The Debian packages holding the libraries a binary needs (NEEDED entries);
# libraries found in the site LibTorch are left out (the image carries them).
runtime_packages() {
  local b lib path pkg libs
  for b in "$@"; do
    libs="$(ldd "$b")"
    for lib in $(objdump -p "$b" | awk '/NEEDED/ {print $2}'); do
      path="$(awk -v l="$lib" '$1 == l {print $3}' <<< "$libs")"
      [ -n "$path" ] || { echo "build.sh: $b needs $lib, which ldd cannot find" >&2; return 1; }
      path="$(readlink -f "$path")"
      if [ -n "$libtorch" ] && [ "${path#"$(readlink -f "$libtorch")"/}" != "$path" ]; then continue; fi
      pkg="$(dpkg -S "$path" 2>/dev/null || dpkg -S "${path#/usr}" 2>/dev/null)" \
        || { echo "build.sh: $path ($lib of $b) belongs to no Debian package" >&2; return 1; }
      echo "${pkg%%:*}"
    done
  done | sort -u
}

# base_image ROLE PACKAGES...: a Debian 12 image with those packages, named by
# a hash of the list; made once with mmdebstrap and imported.
base_image() {
  local role="$1"; shift
  local list; list="$(printf '%s\n' "$@" ca-certificates | sort -u | tr '\n' ',' | sed 's/,$//')"
  local name; name="localhost/qsweep-base-$role:$(echo "$list" | sha256sum | cut -c1-12)"
  if "$engine" image inspect "$name" > /dev/null 2>&1; then echo "$name"; return; fi
  local tar; tar="$(mktemp -d /tmp/qsweep-base-XXXXXX)"
  echo "build.sh: making $name with mmdebstrap: $list" >&2
  mmdebstrap --quiet --variant=essential --include="$list" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$tar/base.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  "$engine" import "$tar/base.tar" "$name" > "$tar/import.log" 2>&1 \
    || { cat "$tar/import.log" >&2; return 1; }
  rm -rf "$tar"
  echo "$name"
}
server_base="$(base_image server $(runtime_packages "$build/qsweep-server" "$build/qsweep"))"
worker_base="$(base_image worker libopenblas0-openmp \
  $(runtime_packages "$wbuild/qsweep-worker" "$wbuild/qsweep"))"
say "base images $server_base $worker_base"

# --- images ---
ctx="$(mktemp -d /tmp/qsweep-image-XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/server/bin" "$ctx/worker/bin" "$ctx/worker/none"
cp "$build/qsweep-server" "$build/qsweep" "$ctx/server/bin/"
cp "$wbuild/qsweep-worker" "$wbuild/qsweep" "$ctx/worker/bin/"
strip "$ctx"/server/bin/* "$ctx"/worker/bin/*
worker_args=()
if [ -n "$libtorch" ]; then
  mkdir -p "$ctx/worker/libtorch"
  cp -a "$libtorch/lib" "$ctx/worker/libtorch/lib"
  worker_args=(--build-arg LIBTORCH=libtorch)
fi
"$engine" build -q -f "$here/Containerfile.server" --build-arg BASE="$server_base" \
  -t "qsweep-server:$tag" "$ctx/server" > /dev/null
"$engine" build -q -f "$here/Containerfile.worker" --build-arg BASE="$worker_base" \
  "${worker_args[@]}" -t "qsweep-worker:$tag" "$ctx/worker" > /dev/null
say "built qsweep-server:$tag and qsweep-worker:$tag"
for i in server worker; do
  size=$("$engine" image inspect --format '{{.Size}}' "qsweep-$i:$tag")
  echo "build.sh: qsweep-$i:$tag $(( size / 1000000 )) MB"
done
[ "$smoke" = 1 ] || exit 0

# --- smoke test ---
D="$(mktemp -d /tmp/qsweep-smoke-XXXXXX)"
srv="qsweep-smoke-server-$$" wrk="qsweep-smoke-worker-$$"
trap '"$engine" rm -f "$srv" "$wrk" > /dev/null 2>&1; rm -rf "$ctx" "$D"' EXIT
fail() {
  echo "build.sh: SMOKE FAIL: $*"
  "$engine" logs "$srv" 2>&1 | tail -20
  "$engine" logs "$wrk" 2>&1 | tail -20
  exit 1
}
mkdir -p "$D/data"
chown 10001:10001 "$D/data"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"
"$engine" run -d --name "$srv" --network host -v "$D/data:/var/lib/qsweep" "qsweep-server:$tag" \
  --listen="$addr" --db=/var/lib/qsweep/qsweep.db --data-dir=/var/lib/qsweep/datasets > /dev/null
up=""
for _ in $(seq 150); do
  up="$("$engine" exec "$srv" qsweep-server --check --listen "$addr" 2>/dev/null || true)"
  [ "$up" = SERVING ] && break
  sleep 0.2
done
[ "$up" = SERVING ] || fail "qsweep-server --check did not answer SERVING in 30 s"
say "server answers: $up"
q() { "$engine" exec "$srv" qsweep "$@" --server "$addr" --token-file /var/lib/qsweep/admin.token; }
q token create --role worker -o /var/lib/qsweep/worker.token > /dev/null
cat > "$D/data/smoke.toml" <<'TOML'
model = "jsc-toy"
dataset = "jsc-synthetic"
synthetic_rows = 1000
max_epochs = 1
batch_size = 64
[sweep.grid]
seed = [1]
TOML
sweep="$(q submit /var/lib/qsweep/smoke.toml --format json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
"$engine" run -d --name "$wrk" --network host \
  -v "$D/data/worker.token:/etc/qsweep/worker/token:ro" "qsweep-worker:$tag" \
  --server "$addr" --token-file /etc/qsweep/worker/token --name smoke-worker \
  --work-dir /tmp/work --data-dir /tmp/datasets --idle-exit 30s > /dev/null
timeout 180 "$engine" exec "$srv" qsweep watch "$sweep" --server "$addr" \
  --token-file /var/lib/qsweep/admin.token > "$D/watch.log" 2>&1 || fail "the sweep did not finish"
q workers --format json > "$D/workers.json"
q jobs "$sweep" --format json > "$D/jobs.json"
python3 - "$D/workers.json" "$D/jobs.json" <<'PY' || fail "no worker registered or the trial did not succeed"
import json, sys
workers = json.load(open(sys.argv[1]))
jobs = json.load(open(sys.argv[2]))
names = {w["id"]: w["name"] for w in workers}
print("build.sh: workers %s" % [(w["name"], w["device"]) for w in workers])
print("build.sh: trials %s" % [(j["id"], j["state"], names.get(j["worker_id"]), j["final_metrics"])
                               for j in jobs])
ok = len(jobs) == 1 and all(j["state"] == "SUCCEEDED" and names.get(j["worker_id"]) == "smoke-worker"
                            for j in jobs)
sys.exit(0 if ok else 1)
PY
say "smoke test passed: server answered, worker registered, 1 trial succeeded"
