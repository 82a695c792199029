#!/usr/bin/env bash
# Runs the Kubernetes manifests of deploy/k8s on podman (no cluster here):
# `podman kube play` of the server (a Pod from the StatefulSet's template, its
# PersistentVolumeClaim) and of the worker Deployment, as rendered by
# kustomize and adapted by to_podman.py (Secrets as hostPath files, host
# network, local images, no GPU limit). Then a sweep runs on the Deployment's
# workers over TLS.
#
#   deploy/k8s/podman/play.sh [BUILD_DIR]     (default: build; as root)
#
# Needs the images of deploy/container/build.sh (localhost/qsweep-server,
# localhost/qsweep-worker), podman, openssl, and BUILD_DIR/qsweep (the CLI,
# used from the host). Checks: the server starts with the admin token of its
# Secret (--admin-token-file; nothing minted), its liveness probe (`podman
# healthcheck run`, the manifest's `qsweep-server --check` over TLS) passes,
# both Deployment replicas register over TLS with the worker token Secret,
# and a 4-trial sweep succeeds on them. Exit 0 pass, 1 fail.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/deploy/container/containers.conf}"
t0=$(date +%s)
say() { echo "play.sh: $* ($(( $(date +%s) - t0 )) s)"; }
for i in qsweep-server qsweep-worker; do
  podman image exists "localhost/$i:latest" \
    || { echo "play.sh: FAIL: image localhost/$i:latest missing: run deploy/container/build.sh"; exit 1; }
done
D="$(mktemp -d /tmp/qsweep-kube-XXXXXX)"
S="$D/secrets"
cleanup() {
  set +e
  [ -f "$D/workers.yaml" ] && podman kube down "$D/workers.yaml" > /dev/null 2>&1
  [ -f "$D/server.yaml" ] && podman kube down "$D/server.yaml" > /dev/null 2>&1
  podman volume rm -f qsweep-server-data > /dev/null 2>&1
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D"; else echo "kept $D"; fi
}
trap cleanup EXIT
fail() {
  echo "play.sh: FAIL: $*"
  for c in $(podman ps -a --format '{{.Names}}' | grep -E '^qsweep-(server|worker)' || true); do
    echo "== podman logs $c"; podman logs "$c" 2>&1 | tail -15
  done
  exit 1
}
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"

# --- the Secrets, as files (what the kubelet would mount) ---
mkdir -p "$S/qsweep-server-tls" "$S/qsweep-admin-token" "$S/qsweep-worker-token"
(
  cd "$S/qsweep-server-tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=qsweep test CA" -keyout ca.key -out ca.crt 2> /dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=qsweep-server" \
    -keyout tls.key -out tls.csr 2> /dev/null
  printf 'subjectAltName=DNS:qsweep-server,DNS:qsweep-server.qsweep.svc,DNS:localhost,IP:127.0.0.1\n' > san
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san -out tls.crt 2> /dev/null
  rm -f ca.key ca.srl tls.csr san
)
echo "qsw_$(openssl rand -hex 6)_$(openssl rand -hex 32)" > "$S/qsweep-admin-token/token"
chown -R 10001:10001 "$S"
chmod 0400 "$S"/*/*
# The admin token with the mode the kubelet leaves a Secret file in a pod with
# fsGroup (0440). Owned by the pod's user here: podman 4.3 does not add
# fsGroup to the container's groups as the kubelet does (a root:10001 file
# is refused with EACCES).
chmod 0440 "$S/qsweep-admin-token/token"
cp "$S/qsweep-admin-token/token" "$D/admin.token"  # for the host CLI (root)
chmod 0600 "$D/admin.token"
q() { "$build/qsweep" "$@" --server "$addr" --tls-ca "$S/qsweep-server-tls/ca.crt" \
        --token-file "$D/admin.token"; }

# --- the server ---
/usr/bin/python3 "$here/to_podman.py" "$D" "$S" "$port"
podman kube play "$D/server.yaml" > "$D/play-server.log" 2>&1 || { cat "$D/play-server.log"; fail "kube play server.yaml"; }
ctr="qsweep-server-server"
up=""
for _ in $(seq 150); do
  up="$(podman exec "$ctr" qsweep-server --check --listen "localhost:$port" \
        --tls-ca /etc/qsweep/tls/ca.crt 2> /dev/null || true)"
  [ "$up" = SERVING ] && break
  sleep 0.2
done
[ "$up" = SERVING ] || fail "the server pod does not answer SERVING"
say "server pod: $(podman pod ps --filter name=qsweep-server --format '{{.Name}} {{.Status}}')"
podman healthcheck run "$ctr" || fail "the server's liveness probe (qsweep-server --check) failed"
say "liveness probe (podman healthcheck run): healthy"
podman exec "$ctr" sh -c 'test ! -e /var/lib/qsweep/admin.token' \
  || fail "the server minted an admin token although --admin-token-file was given"
q token list --format json > "$D/tokens.json" || fail "the Secret's admin token is not accepted"
python3 - "$D/tokens.json" "$(cut -d_ -f2 "$D/admin.token")" <<'PY' || fail "the admin token is not the Secret's"
import json, sys
tokens = json.load(open(sys.argv[1]))
admins = [t for t in tokens if t.get("role") in ("admin", "ROLE_ADMIN")]
print("play.sh: admin tokens %s" % [(t["id"], t.get("name")) for t in admins])
sys.exit(0 if [t["id"] for t in admins] == [sys.argv[2]] else 1)
PY
say "admin token from the Secret file (--admin-token-file), none minted"

# --- the workers ---
q token create --role worker --name kube-play -o "$D/worker.token" > /dev/null
cp "$D/worker.token" "$S/qsweep-worker-token/token"
chown 10001:10001 "$S/qsweep-worker-token/token"
chmod 0400 "$S/qsweep-worker-token/token"
podman kube play "$D/workers.yaml" > "$D/play-workers.log" 2>&1 || { cat "$D/play-workers.log"; fail "kube play workers.yaml"; }
# Both replicas registered (over TLS, with the Secret's worker token).
n=0
for _ in $(seq 150); do
  n="$(q workers --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
  [ "$n" -ge 2 ] && break
  sleep 0.2
done
[ "$n" -ge 2 ] || fail "$n of the Deployment's 2 workers registered in 30 s"
say "both worker replicas registered"
cat > "$D/sweep.toml" <<'TOML'
model = "jsc-toy"
dataset = "jsc-synthetic"
synthetic_rows = 2000
max_epochs = 2
batch_size = 64
[sweep.grid]
seed = [1, 2, 3, 4]
TOML
sweep="$(q submit "$D/sweep.toml" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
timeout 300 "$build/qsweep" watch "$sweep" --server "$addr" --tls-ca "$S/qsweep-server-tls/ca.crt" \
  --token-file "$D/admin.token" > "$D/watch.log" 2>&1 || fail "the sweep did not finish"
q workers --format json > "$D/workers.json"
q jobs "$sweep" --format json > "$D/jobs.json"
podman pod ps --format '{{.Name}} {{.Status}} {{.NumberOfContainers}}' | grep qsweep
python3 - "$D/workers.json" "$D/jobs.json" <<'PY' || fail "the Deployment's workers did not run the sweep"
import json, sys
workers = json.load(open(sys.argv[1]))
jobs = json.load(open(sys.argv[2]))
print("play.sh: workers %s" % [(w["id"], w["name"], w["device"]) for w in workers])
print("play.sh: trials %s" % [(j["id"], j["state"], j["worker_id"]) for j in jobs])
ok = len(workers) == 2 and len(jobs) == 4 and all(j["state"] == "SUCCEEDED" for j in jobs)
sys.exit(0 if ok else 1)
PY
# What the pod specs ask of the containers, as podman applied it.
for c in "$ctr" qsweep-worker-pod-0-worker; do
  uid="$(podman exec "$c" id -u)"
  [ "$uid" = 10001 ] || fail "$c runs as uid $uid, not the manifest's runAsUser 10001"
  ! podman exec "$c" sh -c ': > /probe-write' 2> /dev/null \
    || fail "$c: the root filesystem is writable (readOnlyRootFilesystem: true)"
done
say "containers: uid 10001 (runAsUser), read-only root filesystem"
# podman 4.3 does not take terminationGracePeriodSeconds (75) as the stop
# timeout: said here, not failed (podman's limit, not the manifest's).
stop="$(podman inspect --format '{{.Config.StopTimeout}}' qsweep-worker-pod-0-worker)"
[ "$stop" = 75 ] || echo "play.sh: NOTE: podman set the worker's stop timeout to $stop s, not" \
  "terminationGracePeriodSeconds 75: stop pods with 'podman pod stop -t 75'"
# Scale-down: SIGTERM with the grace; an idle worker exits 0 at once.
podman pod stop -t 75 qsweep-worker-pod-0 qsweep-worker-pod-1 > /dev/null
for c in qsweep-worker-pod-0-worker qsweep-worker-pod-1-worker; do
  rc="$(podman inspect --format '{{.State.ExitCode}}' "$c")"
  [ "$rc" = 0 ] || fail "$c exited $rc after SIGTERM while idle (want 0)"
done
say "worker pods stopped (SIGTERM): both workers exited 0"
say "PASS: server Pod + PVC, worker Deployment (2 replicas), 4 trials over TLS"
