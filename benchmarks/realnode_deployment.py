#!/usr/bin/env python
"""A Deployment's start on a real node, in a vcluster and straight on the host; and the
real node's idle memory.

    .venv/bin/python benchmarks/realnode_deployment.py [--rounds 5] [--replicas 10] [--idle 20]

Needs root, `make kube` and `make images` (the registry must answer), like every real
node. Starts, in a
temporary directory, its own host cluster with one real node (and one tainted kwok
node), a vcluster (a bare control plane) and its syncer with the least-privilege host
token, as syncer_bench.py does, without the portal. Then:

- Deployment to Ready: from `kubectl apply` of a --replicas busybox Deployment (`sleep
  3600`, small requests) until its readyReplicas reach --replicas, in the vcluster (as
  the vcluster reports it, after the syncer copied status back) and straight on the
  host, in the same run: --rounds rounds each, alternating which goes first, the
  Deployment deleted and every pod gone between rounds. Median, p95 and the ratio of
  the medians (target ≤ 1.5×).
- The real node's idle memory: VmRSS of every process of the node, by kind (kubelet,
  containerd and its shims, kube-proxy, kube-router, CoreDNS, the pod sandboxes), with
  RssFile, the part that is the binaries' own pages (shared by every process running
  the same binary, untouched by any GC setting); after --idle quiet seconds once the
  node is up, and again after the rounds. Target: the sum of RSS ≤ 250 MiB.

VCPORTAL_KUBE_GOGC sets GOGC for every Go process the cluster starts (default 50, see
localkube.cluster.go_runtime_env): try it to see what the node's memory gains.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kubernetes import client  # noqa: E402

from controlplane_bench import memory_mib, percentile  # noqa: E402
from localkube import LocalCluster  # noqa: E402
from controlplane.images import reference  # noqa: E402
from localkube.testing import kubectl  # noqa: E402
from syncer_bench import HOST_NAMESPACE, synced_vcluster  # noqa: E402

DIRECT_NAMESPACE = "direct"
NAME = "bench"
TIMEOUT = 300
# Process name (/proc/<pid>/comm, at most 15 characters) -> what the report calls it.
NODE_PROCESS_KINDS = {
    "kubelet": "kubelet", "containerd": "containerd", "containerd-shim": "containerd shims",
    "kube-proxy": "kube-proxy", "kube-router": "kube-router", "coredns": "CoreDNS",
}
SANDBOXES = "pod sandboxes (pause)"


def deployment(replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "sleep", "image": reference("busybox"), "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "16Mi"}},
                }]},
            },
        },
    }


class Target:
    """Where a round applies the Deployment (`cluster`, `namespace`), and the host
    namespace whose pods must all be gone before the next round."""

    def __init__(self, label: str, cluster: LocalCluster, namespace: str, host: LocalCluster, host_namespace: str):
        self.label, self.cluster, self.namespace = label, cluster, namespace
        self.apps = client.AppsV1Api(cluster.api_client())
        self.core = client.CoreV1Api(cluster.api_client())
        self.host_core = client.CoreV1Api(host.api_client())
        self.host_namespace = host_namespace

    def apply_to_ready(self, replicas: int) -> float:
        manifest = json.dumps(deployment(replicas))
        started = time.monotonic()
        kubectl(self.cluster.admin_kubeconfig, "-n", self.namespace, "apply", "-f", "-", input=manifest)
        wait(lambda: (self.apps.read_namespaced_deployment(NAME, self.namespace).status.ready_replicas or 0)
             >= replicas, f"{self.label}: {replicas} pods Ready")
        return time.monotonic() - started

    def delete(self) -> None:
        kubectl(self.cluster.admin_kubeconfig, "-n", self.namespace, "delete", "deployment", NAME, "--wait=false")
        wait(lambda: not self.core.list_namespaced_pod(self.namespace).items
             and not self.host_core.list_namespaced_pod(self.host_namespace).items, f"{self.label}: pods gone")


def wait(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {TIMEOUT} s")
        time.sleep(0.1)


def run_rounds(targets: list[Target], rounds: int, replicas: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for i in range(rounds):
        for target in targets if i % 2 == 0 else targets[::-1]:
            seconds = target.apply_to_ready(replicas)
            times[target.label].append(seconds)
            print(f"  round {i + 1}: {target.label} {seconds:.2f} s", flush=True)
            target.delete()
    return times


# Memory -------------------------------------------------------------------------
def node_memory(host: LocalCluster) -> dict[str, dict[str, float]]:
    """Process count, VmRSS and RssFile (MiB) of the real node, by kind of process."""
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: {"processes": 0, "VmRSS": 0.0, "RssFile": 0.0})
    for pid in sorted(set(host.real_node().leftovers()["processes"])):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            memory = memory_mib(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        kind = kinds[NODE_PROCESS_KINDS.get(comm, SANDBOXES)]
        kind["processes"] += 1
        for key in ("VmRSS", "RssFile"):
            kind[key] += memory.get(key, 0.0)
    return dict(kinds)


# Report -------------------------------------------------------------------------
def report(times: dict[str, list[float]], memory: dict[str, dict], load: float, args) -> None:
    vc, direct = times["vcluster"], times["host"]
    rows = []
    for label, values in (("in the vcluster", vc), ("straight on the host", direct)):
        rows.append((f"apply → {args.replicas} Ready {label}, median", f"{statistics.median(values):.2f} s", ""))
        rows.append((f"apply → {args.replicas} Ready {label}, p95", f"{percentile(values, 95):.2f} s", ""))
    rows.append(("vcluster / host, medians", f"{statistics.median(vc) / statistics.median(direct):.2f}×", "≤ 1.5×"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>10}  target")
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:>10}  {target}")
    print(f"rounds: vcluster {', '.join(f'{t:.2f}' for t in vc)}; host {', '.join(f'{t:.2f}' for t in direct)}")
    print(f"machine load average before the rounds: {load:.1f} ({os.cpu_count()} cores)")
    for moment, kinds in memory.items():
        print_memory(moment, kinds)


def print_memory(moment: str, kinds: dict[str, dict]) -> None:
    print(f"\nreal node memory, {moment}:")
    print(f"  {'process':<22} {'count':>5} {'RSS MiB':>9} {'of it file':>10}")
    for name, kind in sorted(kinds.items(), key=lambda item: -item[1]["VmRSS"]):
        print(f"  {name:<22} {kind['processes']:>5} {kind['VmRSS']:>9.1f} {kind['RssFile']:>10.1f}")
    rss, file = (sum(k[key] for k in kinds.values()) for key in ("VmRSS", "RssFile"))
    print(f"  {'total':<22} {'':>5} {rss:>9.1f} {file:>10.1f}   target: RSS ≤ 250 MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--idle", type=float, default=20, help="quiet seconds before reading memory")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directory")
    args = parser.parse_args()

    with synced_vcluster("realnode-bench-", args.keep, workers=4, nodes=1, real_nodes=1) as (host, vc, _, _):
        client.CoreV1Api(host.api_client()).create_namespace({"metadata": {"name": DIRECT_NAMESPACE}})
        time.sleep(args.idle)
        memory = {f"idle {args.idle:.0f} s after start": node_memory(host)}

        print(f"{args.rounds} rounds of a {args.replicas}-replica Deployment, each side …", flush=True)
        targets = [Target("vcluster", vc, "default", host, HOST_NAMESPACE),
                   Target("host", host, DIRECT_NAMESPACE, host, DIRECT_NAMESPACE)]
        load = os.getloadavg()[0]
        times = run_rounds(targets, args.rounds, args.replicas)
        time.sleep(args.idle)
        memory[f"idle {args.idle:.0f} s after the rounds"] = node_memory(host)
        report(times, memory, load, args)


if __name__ == "__main__":
    main()
