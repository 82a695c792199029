#!/usr/bin/env python3
"""Checks the Kubernetes manifests (issue 9 §3) as rendered by kustomize.

  deploy/k8s/check.py            renders with `kubectl kustomize` (deploy/k8s
                                 and deploy/k8s/burst) and checks the objects
Without kubectl it reads the kustomizations itself (resources, namespace:
all these use) and checks the same objects, saying so. Exit 0 when every
check passes; otherwise one line per failed check and exit 1.
"""
import os
import shutil
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def render_python(folder, namespace=None):
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    namespace = k.get("namespace", namespace)
    objects = []
    for res in k.get("resources", []):
        path = os.path.join(folder, res)
        if os.path.isdir(path):
            objects += render_python(path, namespace)
        else:
            with open(path) as f:
                objects += [o for o in yaml.safe_load_all(f) if o]
    for o in objects:
        if namespace and o["kind"] != "Namespace":
            o.setdefault("metadata", {})["namespace"] = namespace
    return objects


def render(folder):
    kubectl = None if os.environ.get("QSWEEP_K8S_NO_KUBECTL") else shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", folder], check=True, capture_output=True,
                             text=True).stdout
        return [o for o in yaml.safe_load_all(out) if o], "kubectl kustomize"
    return render_python(folder), "python reading of kustomization.yaml (no kubectl)"


def find(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    check(len(found) == 1, f"exactly one {kind}/{name}")
    return found[0] if found else {}


def args_of(container):
    return {a.split("=", 1)[0]: (a.split("=", 1) + [""])[1] for a in container.get("args", [])}


def grace_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    return int(text)


def check_worker_pod(spec, what):
    c = spec["containers"][0]
    a = args_of(c)
    check(a.get("--gpus") == "auto", f"{what}: --gpus=auto")
    check("--token-file" in a, f"{what}: --token-file")
    check("--tls-ca" in a, f"{what}: --tls-ca (workers use TLS)")
    check(c["resources"]["limits"].get("nvidia.com/gpu", 0) >= 1, f"{what}: nvidia.com/gpu limit")
    grace = grace_seconds(a.get("--grace", "60s"))
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    check(grace < tgps <= grace + 60,
          f"{what}: terminationGracePeriodSeconds {tgps} just above --grace {grace}s")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    token_file = a.get("--token-file", "")
    # The token file itself, by subPath: a Secret volume's files are symlinks
    # (token files are opened without following links), and the pod's
    # fsGroup lets the non-root worker read it (0440).
    token = mounts.get(token_file, {})
    check(token.get("readOnly") and token.get("subPath"),
          f"{what}: the token file is a read-only subPath mount")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    check("secret" in vols.get(token.get("name", ""), {}), f"{what}: the token comes from a Secret")
    ctx = spec.get("securityContext", {})
    check(ctx.get("fsGroup") is not None and ctx.get("runAsNonRoot"),
          f"{what}: runs as non-root with an fsGroup that can read the token")


def main():
    objects, how = render(HERE)
    burst, _ = render(os.path.join(HERE, "burst"))
    print(f"k8s check: {len(objects)} + {len(burst)} objects rendered by {how}")

    sts = find(objects, "StatefulSet", "qsweep-server")
    if sts:
        s = sts["spec"]
        check(s.get("replicas") == 1, "server: replicas 1")
        check(sts["metadata"].get("namespace") == "qsweep", "server: namespace qsweep")
        pod = s["template"]["spec"]
        c = pod["containers"][0]
        a = args_of(c)
        check("--tls-cert" in a and "--tls-key" in a, "server: TLS from files")
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = c.get(probe, {}).get("exec", {}).get("command", []) or []
            grpc = c.get(probe, {}).get("grpc")
            check("--check" in cmd or grpc is not None, f"server: {probe} uses the gRPC health check")
        claims = [t["metadata"]["name"] for t in s.get("volumeClaimTemplates", [])]
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        check("data" in claims and mounts.get("data") == os.path.dirname(a.get("--db", "")),
              "server: the database is on the PersistentVolumeClaim")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        tls_dir = os.path.dirname(a.get("--tls-cert", ""))
        tls_mount = [n for n, p in mounts.items() if p == tls_dir]
        check(tls_mount and "secret" in vols.get(tls_mount[0], {}), "server: TLS from a Secret")
        admin = [n for n, v in vols.items() if "secret" in v and "admin" in v["secret"]["secretName"]]
        check(admin and not vols[admin[0]]["secret"].get("optional"),
              "server: the admin token Secret is mounted (not optional)")
        admin_file = a.get("--admin-token-file", "")
        check(admin and any(m["name"] == admin[0] and m.get("readOnly") and
                            (m["mountPath"] == admin_file or
                             m["mountPath"] == os.path.dirname(admin_file))
                            for m in c.get("volumeMounts", [])),
              "server: --admin-token-file reads the admin token Secret")
    svc = find(objects, "Service", "qsweep-server")
    if svc:
        check(any(p["port"] == 7420 for p in svc["spec"]["ports"]), "service: port 7420")
    dep = find(objects, "Deployment", "qsweep-worker")
    if dep:
        check_worker_pod(dep["spec"]["template"]["spec"], "worker Deployment")
    job = find(burst, "Job", "qsweep-burst")
    if job:
        spec = job["spec"]
        check_worker_pod(spec["template"]["spec"], "burst Job")
        check(spec["template"]["spec"].get("restartPolicy") == "Never", "burst Job: restartPolicy Never")
        rules = spec.get("podFailurePolicy", {}).get("rules", [])
        check(any(r["action"] == "Ignore" and
                  any(c["type"] == "DisruptionTarget" for c in (r.get("onPodConditions") or []))
                  for r in rules), "burst Job: podFailurePolicy ignores DisruptionTarget")
        check("--idle-exit" in args_of(spec["template"]["spec"]["containers"][0]),
              "burst Job: --idle-exit")
    for f in failures:
        print("k8s check FAILED:", f)
    if not failures:
        print("k8s check: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
