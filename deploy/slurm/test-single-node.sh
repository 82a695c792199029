#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm + munge, as root, no systemd)
# serving a qsweep sweep with a 2-task worker array (deploy/slurm/
# qsweep-worker.sbatch via `qsweep slurm submit`). During the sweep one task is
# preempted (`scontrol requeue`) and the other task's worker process is killed
# (SIGKILL). Passes when every trial succeeded, the requeued task ran again,
# the killed worker was restarted, and each task saw its own
# CUDA_VISIBLE_DEVICES (two fake GPUs declared in gres.conf on /dev/tty0-1).
#   deploy/slurm/test-single-node.sh [BUILD_DIR]      (default: build)
# Exit 0 pass, 1 fail, 77 cannot run here (not root, no slurm-wlm/munge).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
start_time=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then echo "test-single-node: needs root (slurmd)"; exit 77; fi
for p in slurmctld slurmd munged sbatch scontrol squeue; do
  command -v "$p" >/dev/null || { echo "test-single-node: $p missing (deploy/setup-debian.sh installs slurm-wlm munge)"; exit 77; }
done
[ -r /etc/munge/munge.key ] || { echo "test-single-node: /etc/munge/munge.key missing"; exit 77; }
for b in qsweep qsweep-server qsweep-worker; do
  [ -x "$build/$b" ] || { echo "test-single-node: $build/$b not built"; exit 1; }
done

D="$(mktemp -d /tmp/qsweep-slurm-XXXXXX)"
chmod 755 "$D"
host="$(hostname -s)"
# Private ports from the pid, so that parallel runs do not collide.
base=$(( 20000 + ($$ % 2000) * 4 ))
export SLURM_CONF="$D/slurm.conf"
server_pid=""
fail() {
  echo "test-single-node: FAIL: $*"
  squeue -a 2>&1 | head -5
  for f in "$D"/*.log; do echo "== $f"; tail -n 20 "$f"; done
  echo "test-single-node: FAIL: $*"
  exit 1
}
stop_pidfile() {
  local f="$1"
  if [ -s "$f" ]; then
    local p; p="$(cat "$f")"
    kill "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  fi
}
cleanup() {
  set +e
  [ -n "${jobid:-}" ] && scancel "$jobid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  stop_pidfile "$D/slurmd.pid"
  stop_pidfile "$D/slurmctld.pid"
  stop_pidfile "$D/munged.pid"
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D"; else echo "kept $D"; fi
}
trap cleanup EXIT

# --- munge and Slurm ---
munged -f --socket="$D/munge.sock" --key-file=/etc/munge/munge.key --pid-file="$D/munged.pid" \
  --log-file="$D/munged.log" --seed-file="$D/munged.seed"
cat > "$D/slurm.conf" <<CONF
ClusterName=qsweeptest
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.sock,cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
CONF
cat > "$D/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/tty[0-1]
CONF
mkdir -p "$D/state" "$D/spool"
slurmctld -f "$D/slurm.conf"
slurmd -f "$D/slurm.conf"
for _ in $(seq 150); do
  sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 0.2
done
sinfo -h -o %t | grep -qx idle || fail "the Slurm node did not become idle"
echo "test-single-node: slurm up after $(( $(date +%s) - start_time )) s"

# --- coordinator, tokens, sweep ---
"$build/qsweep-server" --listen 127.0.0.1:0 --db "$D/q.db" --port-file "$D/port" \
  --lease-ttl-ms 3000 --heartbeat-ms 500 --data-dir "$D/data" > "$D/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$D/port" ] && break; sleep 0.1; done
[ -s "$D/port" ] || fail "qsweep-server did not start"
addr="127.0.0.1:$(cat "$D/port")"
q() { "$build/qsweep" "$@" --server "$addr" --token-file "$D/admin.token"; }
q token create --role worker -o "$D/worker.token" > /dev/null
cat > "$D/sweep.toml" <<TOML
model = "jsc-toy"
dataset = "jsc-synthetic"
synthetic_rows = 20000
max_epochs = 16
batch_size = 64
[sweep]
retries = 2
pack = false  # one trial per worker slot: the requeue must land in a running trial
[sweep.grid]
seed = [1, 2, 3, 4, 5, 6]
TOML
sweep="$(q submit "$D/sweep.toml" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "test-single-node: sweep $sweep"

# --- the worker array ---
jobid="$("$build/qsweep" slurm submit --workers 2 --gpus-per-worker 1 --server "$addr" \
  --cpus-per-worker 1 --token-file "$D/worker.token" --worker-binary "$build/qsweep-worker" \
  --grace 20s \
  --idle-exit 60s --output "$D/task-%a.log")"
jobid="${jobid%%;*}"
echo "test-single-node: array job $jobid"

running_jobs() { q jobs "$sweep" --format json | python3 -c '
import json,sys; print(sum(1 for j in json.load(sys.stdin) if j["state"] in ("RUNNING","LEASED")))'; }
# Both tasks at work: two trials running at once.
deadline=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$deadline" ]; do [ "$(running_jobs)" -ge 2 ] && break; sleep 0.2; done
[ "$(running_jobs)" -ge 2 ] || fail "the two array tasks did not both start a trial"
echo "test-single-node: both tasks running trials after $(( $(date +%s) - start_time )) s"

# Preempt task 0 (Slurm SIGTERMs it and requeues it), kill task 1's worker.
scontrol requeue "${jobid}_0"
victim="$(pgrep -f -- "--name slurm-${jobid}_1@" | head -1 || true)"
[ -n "$victim" ] || fail "no worker process of task 1"
kill -9 "$victim"

timeout 240 "$build/qsweep" watch "$sweep" --server "$addr" --token-file "$D/admin.token" \
  > "$D/watch.log" 2>&1 || fail "the sweep did not finish"
q jobs "$sweep" --format json > "$D/jobs.json"
python3 - "$D/jobs.json" <<'PY' || fail "not every trial succeeded"
import json, sys
jobs = json.load(open(sys.argv[1]))
bad = [(j["id"], j["state"]) for j in jobs if j["state"] != "SUCCEEDED"]
print("test-single-node: %d trials, not succeeded: %s" % (len(jobs), bad))
attempts = {j["id"]: j.get("attempt", j.get("attempts")) for j in jobs}
print("test-single-node: attempts per trial: %s" % attempts)
sys.exit(1 if bad or len(jobs) != 6 else 0)
PY
# Task 0 came back after the requeue; task 1 restarted its killed worker.
for _ in $(seq 150); do grep -q "restart 1" "$D/task-0.log" 2>/dev/null && break; sleep 0.2; done
grep -q "restart 1" "$D/task-0.log" || fail "task 0 did not run again after the requeue"
grep -q "worker exited 75 after SIGTERM" "$D/task-0.log" || fail "task 0's worker did not hand back on SIGTERM"
grep -q "handed 1 job(s) back; exit 75" "$D/task-0.log" || fail "task 0's worker did not hand its trial back"
# The requeued task is back at work: a second sweep runs on both tasks.
for _ in $(seq 150); do [ "$(grep -c "registered as" "$D/task-0.log")" -ge 2 ] && break; sleep 0.2; done
sed -i 's/seed = \[1, 2, 3, 4, 5, 6\]/seed = [7, 8, 9, 10]/' "$D/sweep.toml"
before="$(grep -c "leased" "$D/task-0.log")"
sweep2="$(q submit "$D/sweep.toml" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
timeout 240 "$build/qsweep" watch "$sweep2" --server "$addr" --token-file "$D/admin.token" \
  >> "$D/watch.log" 2>&1 || fail "the second sweep did not finish"
[ "$(grep -c "leased" "$D/task-0.log")" -gt "$before" ] || fail "the requeued task 0 ran no trial"
grep -q "restarting the worker" "$D/task-1.log" || fail "task 1 did not restart its killed worker"
g0="$(grep -o 'CUDA_VISIBLE_DEVICES=[^ ]*' "$D/task-0.log" | head -1)"
g1="$(grep -o 'CUDA_VISIBLE_DEVICES=[^ ]*' "$D/task-1.log" | head -1)"
echo "test-single-node: task 0 $g0, task 1 $g1"
[ "$g0" != "$g1" ] && [ "$g0" != "CUDA_VISIBLE_DEVICES=<unset>" ] && [ "$g1" != "CUDA_VISIBLE_DEVICES=<unset>" ] \
  || fail "the tasks did not get their own GPU"
echo "test-single-node: PASS in $(( $(date +%s) - start_time )) s"
