#!/usr/bin/env python3
"""Turns the rendered deploy/k8s manifests into what `podman kube play` (4.3)
runs, for deploy/k8s/podman/play.sh:

  to_podman.py OUT_DIR SECRETS_DIR PORT

writes OUT_DIR/server.yaml (a PersistentVolumeClaim and a Pod made from the
StatefulSet's pod template: podman 4.3 plays Pod, Deployment,
PersistentVolumeClaim and ConfigMap only) and OUT_DIR/workers.yaml (the worker
Deployment). What changes, and nothing else:
  - Secret volumes -> hostPath folders SECRETS_DIR/<secretName> (kube play
    4.3 mounts hostPath, emptyDir and persistentVolumeClaim only); a subPath
    mount of a Secret -> that file;
  - hostNetwork: true (so no containerPort: podman refuses port mappings
    there), the server address -> 127.0.0.1:PORT (no cluster DNS or Service
    here), the listen address and the probes' -> 127.0.0.1:PORT;
  - images -> localhost/qsweep-server:latest, localhost/qsweep-worker:latest
    (deploy/container/build.sh);
  - the nvidia.com/gpu limit is dropped (no GPU on the test machines; the
    worker's --gpus auto then runs one cpu slot);
  - the claim gets volume.podman.io/uid and gid annotations from the pod's
    runAsUser and fsGroup (what fsGroup does for the volume on Kubernetes).
The objects are those kubectl kustomize renders (or check.py's python
reading of the kustomizations when kubectl is missing).
"""
import copy
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import check  # noqa: E402  (deploy/k8s/check.py: render())


def podmanize_pod(spec, secrets_dir, port, image):
    spec = copy.deepcopy(spec)
    spec["hostNetwork"] = True
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        c["image"] = image
        c.pop("ports", None)  # podman refuses port mappings with the host network
        args = []
        for a in c.get("args", []):
            if a.startswith("--listen="):
                a = f"--listen=127.0.0.1:{port}"
            elif a.startswith("--server="):
                a = f"--server=127.0.0.1:{port}"
            args.append(a)
        c["args"] = args
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = c.get(probe, {}).get("exec", {}).get("command")
            if cmd:
                c[probe]["exec"]["command"] = [
                    f"--listen=localhost:{port}" if x.startswith("--listen=") else x for x in cmd]
        limits = c.get("resources", {}).get("limits", {})
        limits.pop("nvidia.com/gpu", None)
        mounts = []
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"], {})
            if "secret" in v and "subPath" in m:
                # One file of the Secret: its own hostPath volume.
                name = f"{m['name']}-{m['subPath'].replace('.', '-')}"
                path = os.path.join(secrets_dir, v["secret"]["secretName"], m["subPath"])
                spec["volumes"].append({"name": name, "hostPath": {"path": path, "type": "File"}})
                m = {k: x for k, x in m.items() if k != "subPath"}
                m["name"] = name
            mounts.append(m)
        c["volumeMounts"] = mounts
    used = {m["name"] for c in spec["containers"] for m in c["volumeMounts"]}
    out = []
    for v in spec.get("volumes", []):
        if v["name"] not in used:
            continue
        if "secret" in v:
            v = {"name": v["name"],
                 "hostPath": {"path": os.path.join(secrets_dir, v["secret"]["secretName"]),
                              "type": "Directory"}}
        out.append(v)
    spec["volumes"] = out
    return spec


def main():
    out_dir, secrets_dir, port = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3])
    objects, how = check.render(os.path.dirname(HERE))
    sts = [o for o in objects if o["kind"] == "StatefulSet"][0]
    dep = [o for o in objects if o["kind"] == "Deployment"][0]
    # The server: the StatefulSet's pod, its claim template as a claim.
    tmpl = sts["spec"]["template"]
    spec = copy.deepcopy(tmpl["spec"])
    claims = []
    for t in sts["spec"].get("volumeClaimTemplates", []):
        claim = f"{sts['metadata']['name']}-{t['metadata']['name']}"
        # fsGroup's part on Kubernetes: the volume belongs to the pod's user.
        owner = str(spec.get("securityContext", {}).get("runAsUser", 0))
        group = str(spec.get("securityContext", {}).get("fsGroup", owner))
        claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": claim,
                                    "annotations": {"volume.podman.io/uid": owner,
                                                    "volume.podman.io/gid": group}},
                       "spec": t["spec"]})
        spec.setdefault("volumes", []).append(
            {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": sts["metadata"]["name"],
                        "labels": tmpl["metadata"].get("labels", {})},
           "spec": podmanize_pod(spec, secrets_dir, port, "localhost/qsweep-server:latest")}
    with open(os.path.join(out_dir, "server.yaml"), "w") as f:
        yaml.safe_dump_all(claims + [pod], f, sort_keys=False)
    dep = copy.deepcopy(dep)
    dep["metadata"].pop("namespace", None)
    dep["spec"]["template"]["spec"] = podmanize_pod(
        dep["spec"]["template"]["spec"], secrets_dir, port, "localhost/qsweep-worker:latest")
    with open(os.path.join(out_dir, "workers.yaml"), "w") as f:
        yaml.safe_dump(dep, f, sort_keys=False)
    print(f"to_podman: from {how}: server.yaml (claims {[c['metadata']['name'] for c in claims]}"
          f" + Pod), workers.yaml (Deployment, {dep['spec'].get('replicas', 1)} replicas)")


if __name__ == "__main__":
    main()
