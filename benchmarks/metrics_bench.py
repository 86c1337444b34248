#!/usr/bin/env python
"""`kubectl top` inside a vcluster: how long its metrics.k8s.io takes to answer, against
the host's own in the same run.

    .venv/bin/python benchmarks/metrics_bench.py [--pods 20] [--samples 30]

Needs root, `make kube` and `make images`, like every real node. Starts, in a temporary
directory, a host cluster with one real node (and its metrics-server, localkube.addons),
a vcluster and its syncer with the least-privilege host token and its metrics API, as
syncer_bench.py does; runs --pods idle pods in the vcluster and waits until each has
figures. Then, --samples times each, one at a time:

- the vcluster's pod metrics of `default` (the vcluster's API server, its aggregation
  layer, the syncer: a SubjectAccessReview, the virtual pods, the host's figures);
- the host's pod metrics of the vcluster's host namespace, read directly (the baseline:
  what the syncer itself waits for);
- `kubectl top pod` in the vcluster, end to end (kubectl's own start included).

Median and p95 of each, the ratio of the first two medians, and the syncer's VmRSS at
the end. No target is set for these (issue 21 asks for the figures).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kubernetes import client  # noqa: E402

from controlplane.images import reference  # noqa: E402
from syncer_bench import HOST_NAMESPACE, percentile, rss_mib, synced_vcluster  # noqa: E402

TIMEOUT = 180


def idle_pod(name: str, image: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "main", "image": image, "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"cpu": "50m", "memory": "16Mi"}}}]}}


def pod_metrics(api: client.ApiClient, namespace: str) -> dict:
    return client.CustomObjectsApi(api).list_namespaced_custom_object("metrics.k8s.io", "v1beta1", namespace, "pods")


def figures(api: client.ApiClient) -> int:
    """How many pods of `default` have figures; 0 while the host's metrics-server starts (503)."""
    try:
        return len(pod_metrics(api, "default")["items"])
    except client.ApiException as exc:
        if exc.status != 503:
            raise
        return 0


def timed(call, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.monotonic()
        call()
        times.append(time.monotonic() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directory")
    args = parser.parse_args()

    with synced_vcluster("metrics-bench-", args.keep, 4, None, nodes=1, real_nodes=1) as (host, vc, proc, _):
        tenant, admin = vc.api_client(), host.api_client()
        core = client.CoreV1Api(tenant)
        for i in range(args.pods):
            core.create_namespaced_pod("default", idle_pod(f"idle-{i}", reference("busybox")))
        print(f"{args.pods} pods: waiting for their figures …", flush=True)
        deadline = time.monotonic() + TIMEOUT
        while figures(tenant) < args.pods:
            if time.monotonic() > deadline:
                raise TimeoutError("the pods' figures in the vcluster")
            time.sleep(1)
        kubectl = [str(vc.bin_dir / "kubectl"), f"--kubeconfig={vc.admin_kubeconfig}", "top", "pod", "--no-headers"]
        results = {
            "vcluster metrics.k8s.io": timed(lambda: pod_metrics(tenant, "default"), args.samples),
            "host metrics.k8s.io (baseline)": timed(lambda: pod_metrics(admin, HOST_NAMESPACE), args.samples),
            "kubectl top pod (vcluster)": timed(lambda: subprocess.run(kubectl, check=True, capture_output=True),
                                                args.samples),
        }
        print(f"{args.pods} pods, {args.samples} samples each:")
        for label, values in results.items():
            print(f"  {label:<32} median {statistics.median(values) * 1000:6.1f} ms   "
                  f"p95 {percentile(values, 95) * 1000:6.1f} ms")
        ratio = statistics.median(results["vcluster metrics.k8s.io"]) / statistics.median(
            results["host metrics.k8s.io (baseline)"])
        print(f"  vcluster / host median: {ratio:.1f}x")
        print(f"syncer RSS: {rss_mib(proc.pid):.0f} MiB")


if __name__ == "__main__":
    main()
