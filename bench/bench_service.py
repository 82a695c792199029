"""What the service benchmarks (coordinator.py, watch_latency.py) share: a free loopback port,
and waiting for a freshly started qsweep-server, then making a user and a worker token with the
admin token it wrote at its first start."""
import os
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_and_make_tokens(build, server, addr, state_dir, tokens_dir, log_name):
    """Waits (30 s at most) until `server` (a Popen whose state dir is `state_dir`) answers at
    `addr`, then writes user.token (owner "bench") and worker.token to `tokens_dir`; their
    paths. Exits the benchmark naming the log when the server does not start."""
    admin = os.path.join(state_dir, "admin.token")
    qsweep = os.path.join(build, "qsweep")

    def cli(*args):
        return subprocess.run([qsweep, *args, "--server", addr, "--token-file", admin],
                              capture_output=True, text=True, timeout=60)
    deadline = time.time() + 30
    while not (os.path.exists(admin) and cli("workers").returncode == 0):
        if server.poll() is not None or time.time() > deadline:
            sys.exit(f"{server.args[0]} did not start; see {log_name}")
        time.sleep(0.1)
    user, worker = os.path.join(tokens_dir, "user.token"), os.path.join(tokens_dir, "worker.token")
    for role, path in (("user", user), ("worker", worker)):
        args = ["token", "create", "--role", role, "-o", path]
        if role == "user":
            args += ["--owner", "bench"]
        r = cli(*args)
        if r.returncode != 0:
            sys.exit(f"qsweep token create --role {role}: {r.stderr}")
    return user, worker
