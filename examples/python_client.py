#!/usr/bin/python3
"""Submits a sweep to a qsweep server, waits for it, and prints the best trial.

Uses Debian's python3-grpcio with stubs generated from proto/ at build time
(build/proto/python). Run it with Debian's interpreter:

    /usr/bin/python3 examples/python_client.py --server 127.0.0.1:7420 \
        --stubs build/proto/python examples/lab1-small.toml
"""
import argparse
import json
import os
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
    return p.parse_args()


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
    channel = grpc.insecure_channel(args.server)
    stub = experiments_pb2_grpc.ExperimentsStub(channel)
    try:
        submitted = stub.SubmitSweep(experiments_pb2.SubmitSweepRequest(
            request_id=uuid.uuid4().hex, sweep_toml=toml_text,
            source_name=os.path.basename(args.sweep)), timeout=30)
        sweep = submitted.sweep
        print(f"submitted sweep {sweep.id} ({sweep.num_jobs} jobs)")
        summary = None
        for event in stub.WatchSweep(experiments_pb2.WatchSweepRequest(sweep_id=sweep.id),
                                     timeout=args.timeout):
            summary = event.summary
            print(f"  succeeded {summary.succeeded}/{sweep.num_jobs}, running "
                  f"{summary.running + summary.leased}, failed {summary.failed}", flush=True)
        jobs, token = [], ""
        while True:  # the server answers in pages
            page = stub.ListJobs(experiments_pb2.ListJobsRequest(
                sweep_id=sweep.id, sort_by=args.metric, descending=True, page_token=token),
                timeout=30)
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


if __name__ == "__main__":
    main()
