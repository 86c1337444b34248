"""Syncer latency, throughput and memory, on a kwok host and a bare vcluster.

    .venv/bin/python benchmarks/syncer_bench.py [--pods 300] [--samples 30] [--threads 8]

Starts its own host cluster (4 kwok nodes) and vcluster in a temporary directory, and
the syncer as `python -m syncer` with the least-privilege host token. Then measures:

- pod created in the vcluster → its host pod exists (one pod at a time, --samples);
- host status change → virtual status: the moment kwok's "Running" reaches the host's
  watchers → the moment the virtual pod shows Running with node and IP;
- a burst of --pods pods created at once in the vcluster (--threads creating), until
  all host pods exist and until all virtual pods are Running;
- the raw rate at which the same client class, with the same host token and as many
  threads, creates pods directly on the host, measured in the same run;
- a claim created in the vcluster (--samples, one at a time, each with a host volume
  ready for it) → Bound on the host (the host's volume controller) → Bound inside;
- the syncer's resident memory (VmRSS) when idle, empty and with the burst synced.

kwok marks pods Running without running anything, so these are control-plane numbers.
Targets: p95 ≤ 500 ms each way; burst ≤ 30 s; throughput ≥ 0.5 × raw; idle RSS ≤ 80 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from kubernetes import client  # noqa: E402

from localkube import LocalCluster  # noqa: E402
from provisioning import manifests  # noqa: E402
from provisioning.hostkube import HostKube  # noqa: E402
from provisioning.runtimes.local import write_endpoints  # noqa: E402
from syncer import names, rbac  # noqa: E402
from syncer.informer import Informer  # noqa: E402
from syncer.kube import PODS, PVCS, Client  # noqa: E402

HOST_NAMESPACE = "vc-bench"
VCLUSTER = "bench"
HOST_NODES = 7  # kwok nodes hold 110 pods each: room for two bursts and the samples
CLAIM_CLASS = "bench-manual"  # host volumes made by hand, offered by the syncer's policy


def pod(name: str, automount: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"automountServiceAccountToken": automount,
                     "containers": [{"name": "app", "image": "registry.example/app:1"}]}}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


class Watcher:
    """When each pod was first seen on each side, by virtual name, from watch events."""

    def __init__(self, vclient: Client, hclient: Client):
        self.host_seen: dict[str, float] = {}
        self.host_running: dict[str, float] = {}
        self.virtual_running: dict[str, float] = {}
        self.changed = threading.Condition()
        selector = f"{names.LABEL_MANAGED_BY}={VCLUSTER}"
        self.informers = [Informer(hclient, PODS, namespace=HOST_NAMESPACE, label_selector=selector),
                          Informer(vclient, PODS, namespace="default")]
        self.informers[0].add_handler(self._on_host)
        self.informers[1].add_handler(self._on_virtual)
        for informer in self.informers:
            informer.start()
            informer.synced.wait(30)

    def _on_host(self, old, new):
        if new is None:
            return
        name = new["metadata"]["annotations"][names.ANN_NAME]
        self._mark(self.host_seen, name)
        if (new.get("status") or {}).get("phase") == "Running":
            self._mark(self.host_running, name)

    def _on_virtual(self, old, new):
        status = (new or {}).get("status") or {}
        if status.get("phase") == "Running" and status.get("podIP") and new["spec"].get("nodeName"):
            self._mark(self.virtual_running, new["metadata"]["name"])

    def _mark(self, seen: dict, name: str) -> None:
        if name not in seen:
            with self.changed:
                seen.setdefault(name, time.monotonic())
                self.changed.notify_all()

    def wait(self, seen: dict, wanted: set[str], timeout: float) -> float:
        """The time by which all of `wanted` were seen."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not wanted <= seen.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(wanted - seen.keys())} of {len(wanted)} not seen in {timeout}s")
                self.changed.wait(left)
        return max(seen[n] for n in wanted)

    def stop(self):
        for informer in self.informers:
            informer.stop()


def create_all(api: Client, namespace: str, pods: list[dict], threads: int) -> float:
    """Create `pods` with `threads` threads; returns the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: api.create(PODS, namespace, p), pods))
    return time.monotonic() - started


def raw_rate(hclient: Client, count: int, threads: int, admin: client.CoreV1Api) -> float:
    pods = [pod(f"raw-{i}", automount=False) for i in range(count)]
    seconds = create_all(hclient, HOST_NAMESPACE, pods, threads)
    admin.delete_collection_namespaced_pod(HOST_NAMESPACE, label_selector="!" + names.LABEL_MANAGED_BY,
                                           grace_period_seconds=0)
    deadline = time.monotonic() + 120
    while [p for p in admin.list_namespaced_pod(HOST_NAMESPACE).items if p.metadata.name.startswith("raw-")]:
        if time.monotonic() > deadline:
            raise TimeoutError("raw pods not deleted")
        time.sleep(0.5)
    return count / seconds


def start_syncer(work: Path, host: LocalCluster, vc: LocalCluster, workers: int,
                 policy: dict | None = None) -> subprocess.Popen:
    admin = host.api_client()
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": HOST_NAMESPACE}})
    host_kube = HostKube(host.admin_kubeconfig.read_text())
    for manifest in manifests.claims_setup():
        host_kube.ensure(manifest)
    labels = {"vcportal.io/benchmark": "syncer"}
    for manifest in manifests.syncer_identity(HOST_NAMESPACE, labels) + manifests.host_name_claims(HOST_NAMESPACE,
                                                                                                    labels):
        host_kube.apply(manifest)  # the RBAC production grants
    host_kubeconfig = work / "host.kubeconfig"
    host_kubeconfig.touch(mode=0o600)
    host_kubeconfig.write_text(rbac.token_kubeconfig(admin, host.server, host.ca_cert_path.read_bytes(),
                                                     HOST_NAMESPACE, manifests.SYNCER))
    config = work / "syncer.yaml"
    config.write_text(yaml.safe_dump({"vcluster": VCLUSTER, "virtual_kubeconfig": str(vc.admin_kubeconfig),
                                      "host_kubeconfig": str(host_kubeconfig), "host_namespace": HOST_NAMESPACE,
                                      "workers": workers, **write_endpoints(vc, work),
                                      "policy": policy or {"storage_classes": [CLAIM_CLASS]}}))
    log = work / "syncer.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "syncer", "--config", str(config),
                                 "--log-level", os.environ.get("SYNCER_LOG_LEVEL", "INFO")], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "is running" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the syncer did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def wait_for_default_account(vc: LocalCluster) -> None:
    core = client.CoreV1Api(vc.api_client())
    deadline = time.monotonic() + 60
    while not [s for s in core.list_namespaced_service_account("default").items if s.metadata.name == "default"]:
        if time.monotonic() > deadline:
            raise TimeoutError("no default ServiceAccount in the vcluster")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--idle", type=float, default=10, help="seconds of quiet before reading RSS")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directory")
    args = parser.parse_args()

    with synced_vcluster("syncer-bench-", args.keep, args.threads, nodes=HOST_NODES) as (host, vc, proc, work):
        vclient = Client.from_kubeconfig(vc.admin_kubeconfig)
        hclient = Client.from_kubeconfig(work / "host.kubeconfig")
        watcher = Watcher(vclient, hclient)
        results = measure(args, proc, vclient, hclient, watcher, host, vc)
        watcher.stop()
        report(results, args)


@contextmanager
def synced_vcluster(prefix: str, keep: bool, workers: int, policy: dict | None = None, **host_nodes: int
                    ) -> Iterator[tuple[LocalCluster, LocalCluster, subprocess.Popen, Path]]:
    """A host cluster (with `host_nodes`, as LocalCluster.init takes them), a vcluster
    and its syncer, in a temporary directory: (host, vcluster, syncer, directory).
    Everything stops at the end; the directory is removed unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    host, vc = LocalCluster(work / "host"), LocalCluster(work / "vc")
    proc = None
    try:
        print("starting a host cluster and a vcluster …", flush=True)
        host.init(name="bench-host", **host_nodes)
        host.start(timeout=240)
        vc.init(name="bench-vc")
        vc.start()
        wait_for_default_account(vc)
        proc = start_syncer(work, host, vc, workers, policy)
        yield host, vc, proc, work
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        vc.stop()
        host.stop()
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure(args, proc, vclient: Client, hclient: Client, watcher: Watcher, host: LocalCluster,
            vc: LocalCluster) -> dict:
    results: dict = {"load": os.getloadavg()[0]}
    admin = client.CoreV1Api(host.api_client())
    time.sleep(args.idle)
    results["rss_empty"] = rss_mib(proc.pid)

    print(f"latency: {args.samples} pods one at a time …", flush=True)
    down, up = [], []
    for i in range(args.samples):
        name = f"lat-{i}"
        started = time.monotonic()
        vclient.create(PODS, "default", pod(name))
        down.append(watcher.wait(watcher.host_seen, {name}, 30) - started)
        watcher.wait(watcher.virtual_running, {name}, 30)
        up.append(watcher.virtual_running[name] - watcher.wait(watcher.host_running, {name}, 30))
    results["down"], results["up"] = down, up
    print(f"claims: {args.samples} one at a time …", flush=True)
    results["claims"] = claims_bound(args.samples, vclient, hclient, admin)

    # The host is shared with whatever else runs on the machine: measure the raw rate
    # right before and right after the burst, and compare with their mean.
    print(f"raw host creates: {args.pods} pods …", flush=True)
    raw_before = raw_rate(hclient, args.pods, args.threads, admin)
    print(f"burst: {args.pods} pods at once …", flush=True)
    results["burst"] = burst(args, proc, vclient, watcher, host, vc, "burst", automount=True)
    print(f"raw host creates again: {args.pods} pods …", flush=True)
    results["raw_rates"] = (raw_before, raw_rate(hclient, args.pods, args.threads, admin))
    print(f"burst without service-account tokens: {args.pods} pods at once …", flush=True)
    results["burst_no_token"] = burst(args, proc, vclient, watcher, host, vc, "plain", automount=False)

    time.sleep(args.idle)
    results["rss_loaded"] = rss_mib(proc.pid)
    return results


def claims_bound(samples: int, vclient: Client, hclient: Client, admin: client.CoreV1Api
                 ) -> tuple[list[float], list[float]]:
    """(created → host claim Bound, created → virtual claim Bound), in seconds, per claim."""
    on_host, inside = [], []
    for i in range(samples):
        admin.create_persistent_volume({"metadata": {"name": f"bench-pv-{i}"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": CLAIM_CLASS,
            "hostPath": {"path": f"/tmp/bench-{i}"}}})
    # The host's volume controller matches a new claim against the volumes its cache holds;
    # one it has not seen yet waits for its 15 s resync.
    time.sleep(2)
    for i in range(samples):
        name = f"claim-{i}"
        started = time.monotonic()
        vclient.create(PVCS, "default", {"metadata": {"name": name}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": CLAIM_CLASS,
            "resources": {"requests": {"storage": "1Gi"}}}})
        host_name = names.host_name(name, "default", VCLUSTER)
        host_bound = None
        while True:
            if host_bound is None and _phase(hclient, HOST_NAMESPACE, host_name) == "Bound":
                host_bound = time.monotonic()
            if _phase(vclient, "default", name) == "Bound":
                inside.append(time.monotonic() - started)
                on_host.append((host_bound or time.monotonic()) - started)
                break
            if time.monotonic() - started > 60:
                raise TimeoutError(f"claim {name} not Bound inside within 60 s")
            time.sleep(0.01)
    return on_host, inside


def _phase(api: Client, namespace: str, name: str) -> str | None:
    found = api.get_or_none(PVCS, namespace, name)
    return ((found or {}).get("status") or {}).get("phase")


def burst(args, proc, vclient: Client, watcher: Watcher, host: LocalCluster, vc: LocalCluster, prefix: str,
          automount: bool) -> dict:
    names_ = {f"{prefix}-{i}" for i in range(args.pods)}
    groups = {"syncer": [proc.pid], "host": list(host.pids().values()), "vcluster": list(vc.pids().values())}
    before, machine = group_cpu(groups), machine_busy()
    started = time.monotonic()
    result = {"create": create_all(vclient, "default", [pod(n, automount) for n in sorted(names_)], args.threads)}
    result["host"] = watcher.wait(watcher.host_seen, names_, 300) - started
    result["running"] = watcher.wait(watcher.virtual_running, names_, 300) - started
    result["cpu"] = {k: v - before[k] for k, v in group_cpu(groups).items()}
    busy, total = (after - before for after, before in zip(machine_busy(), machine))
    result["machine"] = busy / total
    return result


def group_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}


def report(r: dict, args) -> None:
    b, plain = r["burst"], r["burst_no_token"]
    throughput, plain_throughput = args.pods / b["host"], args.pods / plain["host"]
    raw = statistics.mean(r["raw_rates"])
    cpu = ", ".join(f"{k} {v:.1f} s" for k, v in b["cpu"].items())
    rows = [
        ("vcluster pod created → host pod exists, median", f"{statistics.median(r['down']) * 1000:.0f} ms", ""),
        ("vcluster pod created → host pod exists, p95", f"{percentile(r['down'], 95) * 1000:.0f} ms", "≤ 500 ms"),
        ("host status change → virtual status, median", f"{statistics.median(r['up']) * 1000:.0f} ms", ""),
        ("host status change → virtual status, p95", f"{percentile(r['up'], 95) * 1000:.0f} ms", "≤ 500 ms"),
        ("claim created → Bound on the host, median / p95",
         f"{statistics.median(r['claims'][0]) * 1000:.0f} / {percentile(r['claims'][0], 95) * 1000:.0f} ms", ""),
        ("claim created → Bound inside, median / p95",
         f"{statistics.median(r['claims'][1]) * 1000:.0f} / {percentile(r['claims'][1], 95) * 1000:.0f} ms", ""),
        (f"burst of {args.pods}: created in the vcluster", f"{b['create']:.1f} s", ""),
        (f"burst of {args.pods}: all host pods exist", f"{b['host']:.1f} s", ""),
        (f"burst of {args.pods}: all Running in the vcluster (end to end)", f"{b['running']:.1f} s", "≤ 30 s"),
        (f"burst of {args.pods}: machine CPU busy ({os.cpu_count()} cores, all processes)",
         f"{b['machine'] * 100:.0f} %", ""),
        ("syncer throughput (burst, to host)", f"{throughput:.0f} pods/s", ""),
        (f"raw host create rate (same client, {args.threads} threads), before/after",
         "/".join(f"{x:.0f}" for x in r["raw_rates"]) + " pods/s", ""),
        ("throughput / mean raw rate", f"{throughput / raw:.2f}", "≥ 0.5"),
        (f"burst of {args.pods} without tokens: all host pods exist", f"{plain['host']:.1f} s", ""),
        (f"burst of {args.pods} without tokens: all Running (end to end)", f"{plain['running']:.1f} s", ""),
        ("throughput without tokens / mean raw rate", f"{plain_throughput / raw:.2f}", ""),
        ("syncer idle RSS, empty vcluster", f"{r['rss_empty']:.1f} MiB", "≤ 80 MiB"),
        (f"syncer idle RSS, {2 * args.pods + args.samples} pods synced", f"{r['rss_loaded']:.1f} MiB", ""),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure':<{width}}  {'value':>14}  target")
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:>14}  {target}")
    print(f"\nCPU during the burst: {cpu}. Machine load average at the start: {r['load']:.1f}.")


if __name__ == "__main__":
    main()
