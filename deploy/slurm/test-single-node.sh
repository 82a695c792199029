#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm + munge, as root, no systemd)
# serving a qsweep sweep with a 2-task worker array (deploy/slurm/
# qsweep-worker.sbatch via `qsweep slurm submit`). While each task provably
# runs a trial, task 0 is preempted (`scontrol requeue`) and task 1's worker
# process is killed (SIGKILL). Passes when every trial succeeded exactly once,
# the requeued task came back and ran a trial to the end, the killed worker was
# restarted, and each task saw its own CUDA_VISIBLE_DEVICES (two fake GPUs
# declared in gres.conf on /dev/tty0-1).
#
# Deterministic: the array runs the test worker qsweep-worker-held
# (tests/e2e/held_job_runner.h) through a wrapper that gives each worker start
# of each task its own hold folder hold-<task>-<start>. The first trial a worker
# runs reports its first epoch and then holds (RUNNING, heartbeats going) and
# writes "<pid> <job id>" to the folder's FIFO; it goes on only when the test
# creates the folder's `release` file, or stops when the worker is told to. The
# test waits on those FIFOs and on the job states shown by `qsweep show
# --format json`, never on a trial's speed.
#   deploy/slurm/test-single-node.sh [BUILD_DIR]      (default: build)
# Exit 0 pass, 1 fail (including: cannot run Slurm here: not root, no
# slurm-wlm/munge; configure with -DQSWEEP_TEST_SLURM=OFF to leave it out).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
start_time=$(date +%s)

cannot() {
  echo "test-single-node: FAIL: cannot run Slurm here: $* (run as root after deploy/setup-debian.sh," \
       "or configure with -DQSWEEP_TEST_SLURM=OFF to leave this test out)"
  exit 1
}
if [ "$(id -u)" -ne 0 ]; then cannot "needs root (slurmd)"; fi
for p in slurmctld slurmd munged sinfo sbatch scontrol squeue scancel; do
  command -v "$p" >/dev/null || cannot "$p missing (packages slurm-wlm munge)"
done
held_bin="$build/tests/e2e/qsweep-worker-held"
for b in "$build/qsweep" "$build/qsweep-server" "$held_bin"; do
  [ -x "$b" ] || { echo "test-single-node: FAIL: $b not built"; exit 1; }
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
# A private munge key: no dependence on the package's /etc/munge/munge.key.
head -c 1024 /dev/urandom > "$D/munge.key"
chmod 400 "$D/munge.key"
munged -f --socket="$D/munge.sock" --key-file="$D/munge.key" --pid-file="$D/munged.pid" \
  --log-file="$D/munged.log" --seed-file="$D/munged.seed" || fail "cannot run Slurm here: munged did not start"
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
slurmctld -f "$D/slurm.conf" || fail "cannot run Slurm here: slurmctld did not start"
slurmd -f "$D/slurm.conf" || fail "cannot run Slurm here: slurmd did not start"
for _ in $(seq 150); do
  sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 0.2
done
sinfo -h -o %t | grep -qx idle || fail "cannot run Slurm here: the node did not become idle in 30 s"
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
synthetic_rows = 2000
max_epochs = 4
batch_size = 64
[sweep]
retries = 2
pack = false  # one trial per worker slot: a held trial holds its task
[sweep.grid]
seed = [1, 2, 3, 4, 5, 6]
TOML
sweep="$(q submit "$D/sweep.toml" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "test-single-node: sweep $sweep"

# --- the held test worker ---
# Worker starts: task 0 runs once before and once after its requeue, task 1
# once before and once after its worker is killed. Each start takes the next
# free hold folder of its task; a further start (not expected) holds nothing.
fds=()
for t in 0 1; do
  for k in 0 1; do
    mkdir "$D/hold-$t-$k"
    mkfifo "$D/hold-$t-$k/held.fifo"
    # Opened read-write: never blocks, and keeps a reader for the worker's
    # non-blocking open whenever it comes.
    exec {fd}<>"$D/hold-$t-$k/held.fifo"
    fds[$((t * 2 + k))]=$fd
  done
done
cat > "$D/worker-held.sh" <<WRAP
#!/bin/bash
unset QSWEEP_TEST_HOLD_DIR
for k in 0 1; do
  if mkdir "$D/hold-\${SLURM_ARRAY_TASK_ID}-\$k/started" 2>/dev/null; then
    export QSWEEP_TEST_HOLD_DIR="$D/hold-\${SLURM_ARRAY_TASK_ID}-\$k"
    # Hold from the first metric of epoch 1: the trial's resume state after
    # epoch 1 is on the coordinator by then, so the next worker resumes it.
    export QSWEEP_TEST_HOLD_EPOCH=1
    echo "worker-held.sh: hold folder \$QSWEEP_TEST_HOLD_DIR"
    break
  fi
done
exec "$held_bin" "\$@"
WRAP
chmod 755 "$D/worker-held.sh"

# --- the worker array ---
jobid="$("$build/qsweep" slurm submit --workers 2 --gpus-per-worker 1 --server "$addr" \
  --cpus-per-worker 1 --token-file "$D/worker.token" --worker-binary "$D/worker-held.sh" \
  --grace 20s --idle-exit 60s --output "$D/task-%a.log")"
jobid="${jobid%%;*}"
echo "test-single-node: array job $jobid"

# held TASK START: waits (90 s at most) for the hold of that worker start, then
# for its job to be RUNNING on a worker of that array task; sets hpid, hjob
# and hworker (the worker process, the job, the worker's id on the server).
held() {
  local t="$1" k="$2"
  hpid="" hjob="" hworker=""
  read -r -t 90 -u "${fds[$((t * 2 + k))]}" hpid hjob \
    || fail "task $t (worker start $k) held no trial within 90 s"
  local deadline=$(( $(date +%s) + 30 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    q show "$hjob" --format json > "$D/held-job.json"
    q workers --format json > "$D/held-workers.json"
    hworker="$(python3 - "$D/held-job.json" "$D/held-workers.json" "slurm-${jobid}_$t@" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
names = {w["id"]: w["name"] for w in json.load(open(sys.argv[2]))}
if job["state"] == "RUNNING" and names.get(job["worker_id"], "").startswith(sys.argv[3]):
    print(job["worker_id"])
PY
)"
    [ -n "$hworker" ] && break
    sleep 0.2
  done
  [ -n "$hworker" ] || fail "job $hjob held by pid $hpid is not RUNNING on task $t"
}

# 1. Both tasks provably at work: each holds a RUNNING trial.
held 0 0; pid0=$hpid job0=$hjob worker0=$hworker
held 1 0; pid1=$hpid job1=$hjob worker1=$hworker
echo "test-single-node: task 0 runs $job0 (pid $pid0), task 1 runs $job1 (pid $pid1)," \
     "$(( $(date +%s) - start_time )) s"

# 2. Preempt task 0 (Slurm SIGTERMs it and requeues it); kill task 1's worker.
tr '\0' ' ' < "/proc/$pid1/cmdline" | grep -q -- "--name slurm-${jobid}_1@" \
  || fail "pid $pid1 is not task 1's worker"
scontrol requeue "${jobid}_0"
kill -9 "$pid1"

# 3. Both back at work: the requeued task 0 (a new allocation) and task 1's
# restarted worker each hold a RUNNING trial again.
held 0 1; job0b=$hjob worker0b=$hworker
held 1 1; job1b=$hjob worker1b=$hworker
[ "$worker0b" != "$worker0" ] || fail "task 0 did not register a new worker after its requeue"
[ "$worker1b" != "$worker1" ] || fail "task 1 did not register a new worker after the kill"
echo "test-single-node: after requeue/kill task 0 runs $job0b, task 1 runs $job1b," \
     "$(( $(date +%s) - start_time )) s"
touch "$D/hold-0-1/release" "$D/hold-1-1/release"

timeout 120 "$build/qsweep" watch "$sweep" --server "$addr" --token-file "$D/admin.token" \
  > "$D/watch.log" 2>&1 || fail "the sweep did not finish"
mkdir "$D/final"
for j in $(q jobs "$sweep" --format json | python3 -c 'import json,sys; [print(j["id"]) for j in json.load(sys.stdin)]'); do
  q show "$j" --format json > "$D/final/$j.json"
done
python3 - "$D/final" "$job0" "$job1" "$job0b" "$worker0" "$worker1" "$worker0b" <<'PY' || fail "the trials do not show what happened"
import glob, json, os, sys
folder, job0, job1, job0b, worker0, worker1, worker0b = sys.argv[1:]
jobs = {}
for f in glob.glob(os.path.join(folder, "*.json")):
    j = json.load(open(f))
    jobs[j["id"]] = j
errors = []
if len(jobs) != 6:
    errors.append("%d trials, expected 6" % len(jobs))
for jid, j in sorted(jobs.items()):
    won = [a for a in j["attempts"] if a["state"] == "SUCCEEDED"]
    print("test-single-node: %s %s attempt %s: %s" % (
        jid, j["state"], j["attempt"],
        ", ".join("%s on %s" % (a["state"], a["worker_id"]) for a in j["attempts"])))
    if j["state"] != "SUCCEEDED" or len(won) != 1:
        errors.append("%s: %s with %d succeeded attempts (want SUCCEEDED once)" % (jid, j["state"], len(won)))
def first(jid):
    return jobs[jid]["attempts"][0] if jid in jobs and jobs[jid]["attempts"] else {}
# The preempted trial: its first attempt ran on task 0's first worker, was
# handed back (not a failure), and the trial succeeded on a later attempt.
if first(job0).get("worker_id") != worker0 or first(job0).get("state") == "SUCCEEDED":
    errors.append("%s: first attempt %s, expected handed back by %s" % (job0, first(job0), worker0))
if first(job1).get("worker_id") != worker1 or first(job1).get("state") == "SUCCEEDED":
    errors.append("%s: first attempt %s, expected lost with the killed %s" % (job1, first(job1), worker1))
# The requeued task 0 finished the trial it held after coming back.
won0b = [a for a in jobs.get(job0b, {}).get("attempts", []) if a["state"] == "SUCCEEDED"]
if not won0b or won0b[0]["worker_id"] != worker0b:
    errors.append("%s: expected to succeed on the requeued task 0's worker %s" % (job0b, worker0b))
# The preempted trial (job0) and the orphaned one (job1) resumed: their
# succeeding attempt started from the resume state the first attempt stored
# after its first epoch, not from scratch.
for jid in (job0, job1):
    won = [a for a in jobs.get(jid, {}).get("attempts", []) if a["state"] == "SUCCEEDED"]
    resumed = int(won[0].get("resumed_from_epoch", 0)) if won else 0
    print("test-single-node: %s resumed from epoch %d" % (jid, resumed))
    if resumed < 1:
        errors.append("%s: its succeeding attempt did not resume (resumed_from_epoch %d)" % (jid, resumed))
for e in errors:
    print("test-single-node: " + e)
sys.exit(1 if errors else 0)
PY
# The task logs: task 0's worker handed its trial back on SIGTERM and the task
# ran again (Slurm restart 1); task 1 restarted its killed worker.
grep -q "worker exited 75 after SIGTERM" "$D/task-0.log" || fail "task 0's worker did not hand back on SIGTERM"
grep -q "handed 1 job(s) back; exit 75" "$D/task-0.log" || fail "task 0's worker did not hand its trial back"
grep -q "restart 1" "$D/task-0.log" || fail "task 0 did not run again after the requeue"
grep -q "restarting the worker" "$D/task-1.log" || fail "task 1 did not restart its killed worker"
g0="$(grep -o 'CUDA_VISIBLE_DEVICES=[^ ]*' "$D/task-0.log" | sort -u)"
g1="$(grep -o 'CUDA_VISIBLE_DEVICES=[^ ]*' "$D/task-1.log" | sort -u)"
echo "test-single-node: task 0 $(echo $g0), task 1 $(echo $g1)"
[ "$(echo "$g0" | wc -l)" -eq 1 ] && [ "$(echo "$g1" | wc -l)" -eq 1 ] && [ "$g0" != "$g1" ] \
  && [ "$g0" != "CUDA_VISIBLE_DEVICES=<unset>" ] && [ "$g1" != "CUDA_VISIBLE_DEVICES=<unset>" ] \
  || fail "the tasks did not each get their own GPU"
echo "test-single-node: PASS in $(( $(date +%s) - start_time )) s"
