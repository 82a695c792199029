#!/usr/bin/python3
"""Submits a sweep to a qsweep server, waits for it, and prints the best trial.

Uses Debian's python3-grpcio with stubs generated from proto/ at build time
(build/proto/python). Run it with Debian's interpreter:

    /usr/bin/python3 examples/python_client.py --server 127.0.0.1:7420 \
        --stubs build/proto/python examples/lab1-small.toml

Every call carries your bearer token ("authorization: Bearer qsw_..."), read
from --token-file, $QSWEEP_TOKEN_FILE or ~/.config/qsweep/token (mode 0600);
for a server on this machine started by `qsweep up`, its admin token in
~/.local/share/qsweep/admin.token is used when you have none. A server on
another machine is reached over TLS (--tls-ca); a local one with gRPC's local
credentials, as qsweep-server requires.
"""
import argparse
import json
import os
import stat
import sys
import uuid


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="sweep TOML file")
    p.add_argument("--server", default="127.0.0.1:7420", help="host:port of qsweep-server")
    p.add_argument("--stubs", default=os.path.join("build", "proto", "python"),
                   help="folder with the generated qsweep/v1/*_pb2*.py")
    p.add_argument("--metric", default="test_acc_epoch", help="final metric to rank by")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    p.add_argument("--token-file", default=os.environ.get("QSWEEP_TOKEN_FILE"),
                   help="file holding your token (mode 0600)")
    p.add_argument("--tls-ca", default=os.environ.get("QSWEEP_TLS_CA"),
                   help="PEM CA of the server's certificate: connect over TLS")
    p.add_argument("--best-state-dict", metavar="FILE",
                   help="also download the best trial's weights here and load them with "
                        "torch.load(..., weights_only=True)")
    return p.parse_args()


def is_local(address):
    host = address.rsplit(":", 1)[0].strip("[]")
    return address.startswith("unix:") or host in ("localhost", "::1") or host.startswith("127.")


def read_token(path_arg, server):
    home = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    candidates = [path_arg] if path_arg else [os.path.join(config, "qsweep", "token")]
    if not path_arg and is_local(server):
        candidates.append(os.path.join(data, "qsweep", "admin.token"))
    for path in candidates:
        if not os.path.exists(path):
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            sys.exit(f"python_client: token file {path} has mode {mode:04o}; run chmod 600 {path}")
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    sys.exit(f"python_client: no token file ({', '.join(candidates)}); pass --token-file")


def make_channel(grpc, server, tls_ca):
    if tls_ca:
        with open(tls_ca, "rb") as f:
            return grpc.secure_channel(server, grpc.ssl_channel_credentials(f.read()))
    if not is_local(server):
        sys.exit(f"python_client: {server} is not on this machine; pass --tls-ca")
    kind = grpc.LocalConnectionType.UDS if server.startswith("unix:") else \
        grpc.LocalConnectionType.LOCAL_TCP
    return grpc.secure_channel(server, grpc.local_channel_credentials(kind))


def main():
    args = parse_args()
    sys.path.insert(0, args.stubs)
    try:
        import grpc
        from qsweep.v1 import common_pb2, experiments_pb2, experiments_pb2_grpc
    except ImportError as e:
        sys.exit(f"python_client: cannot import the stubs from {args.stubs!r}: {e}")

    with open(args.sweep, encoding="utf-8") as f:
        toml_text = f.read()
    auth = [("authorization", "Bearer " + read_token(args.token_file, args.server))]
    channel = make_channel(grpc, args.server, args.tls_ca)
    stub = experiments_pb2_grpc.ExperimentsStub(channel)
    try:
        submitted = stub.SubmitSweep(experiments_pb2.SubmitSweepRequest(
            request_id=uuid.uuid4().hex, sweep_toml=toml_text,
            source_name=os.path.basename(args.sweep)), timeout=30, metadata=auth)
        sweep = submitted.sweep
        print(f"submitted sweep {sweep.id} ({sweep.num_jobs} jobs)")
        summary = None
        for event in stub.WatchSweep(experiments_pb2.WatchSweepRequest(sweep_id=sweep.id),
                                     timeout=args.timeout, metadata=auth):
            summary = event.summary
            print(f"  succeeded {summary.succeeded}/{sweep.num_jobs}, running "
                  f"{summary.running + summary.leased}, failed {summary.failed}", flush=True)
        jobs, token = [], ""
        while True:  # the server answers in pages
            page = stub.ListJobs(experiments_pb2.ListJobsRequest(
                sweep_id=sweep.id, sort_by=args.metric, descending=True, page_token=token),
                timeout=30, metadata=auth)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                break
    except grpc.RpcError as e:
        sys.exit(f"python_client: {e.code().name}: {e.details()}")

    done = [j for j in jobs if j.state == common_pb2.SUCCEEDED and args.metric in j.final_metrics]
    if not done:
        sys.exit(f"python_client: no succeeded trial has metric {args.metric!r}")
    best = done[0]
    print(f"best trial: {best.id} {args.metric}={best.final_metrics[args.metric]:.4f} "
          f"config={json.loads(best.trial_json)}")
    if args.best_state_dict:
        save_best_state_dict(stub, auth, best, args.best_state_dict)


def save_best_state_dict(stub, auth, job, path):
    """Downloads the job's best state dict, checks it against the hash the job
    records, and loads it with weights_only=True (no pickled code runs)."""
    import hashlib
    import torch
    from qsweep.v1 import experiments_pb2
    expected = job.artifact_sha256.get("best_state_dict")
    if not expected:
        sys.exit(f"python_client: job {job.id} records no best_state_dict")
    data = b"".join(chunk.data for chunk in stub.DownloadArtifact(
        experiments_pb2.DownloadArtifactRequest(job_id=job.id, name="best_state_dict"),
        timeout=300, metadata=auth))
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        sys.exit(f"python_client: download hashes to {actual}, job records {expected}")
    with open(path, "wb") as f:
        f.write(data)
    state = torch.load(path, weights_only=True)
    print(f"saved {path}: {len(state)} tensors, sha256 verified, loaded with weights_only=True")


if __name__ == "__main__":
    main()
