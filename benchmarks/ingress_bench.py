#!/usr/bin/env python
"""An Ingress created in a vcluster, until the host's ingress controller serves its page.

    .venv/bin/python benchmarks/ingress_bench.py [--samples 20]

Needs root, `make kube` and `make images`, like every real node. Starts, in a temporary
directory, a host cluster with one real node (and its ingress controller,
localkube.addons), a vcluster and its syncer with the least-privilege host token and a
policy giving it `*.bench.apps.vcportal.localhost`, as syncer_bench.py does. One web
Deployment (busybox's httpd) and its Service run in the vcluster. Then --samples
Ingresses are created one at a time, each for a new host name in front of that Service,
and for each:

- created → its host copy exists (the syncer: translation and the host-name claim);
- created → the page is served with that host at the node's address (the syncer, the
  controller's watch and reload of Caddy's configuration).

Median and p95 of each, and the syncer's VmRSS at the end. No target is set for these
(issue 21 asks for the figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import requests  # noqa: E402
from kubernetes import client  # noqa: E402

from controlplane.images import reference  # noqa: E402
from localkube.addons import INGRESS_NODE_PORTS  # noqa: E402
from syncer import names  # noqa: E402
from syncer_bench import HOST_NAMESPACE, VCLUSTER, percentile, rss_mib, synced_vcluster  # noqa: E402

DOMAIN = "bench.apps.vcportal.localhost"
TIMEOUT = 120


def web(image: str) -> tuple[dict, dict]:
    labels = {"app": "web"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "httpd", "image": image, "ports": [{"containerPort": 8080}],
                            "command": ["sh", "-c", "mkdir -p /www && echo served > /www/index.html && "
                                        "exec httpd -f -p 8080 -h /www"],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
    service = {"metadata": {"name": "web"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return deployment, service


def ingress(name: str, host: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"rules": [{"host": host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def until(check, what: str) -> float:
    start, deadline = time.monotonic(), time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)
    return time.monotonic() - start


def served(url: str, host: str) -> bool:
    try:
        return requests.get(url, headers={"Host": host}, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directory")
    args = parser.parse_args()

    policy = {"ingress_hosts": [f"*.{DOMAIN}"]}
    with synced_vcluster("ingress-bench-", args.keep, 2, policy, nodes=1, real_nodes=1) as (host, vc, proc, _):
        apps, core = client.AppsV1Api(vc.api_client()), client.CoreV1Api(vc.api_client())
        deployment, service = web(reference("busybox"))
        apps.create_namespaced_deployment("default", deployment)
        core.create_namespaced_service("default", service)
        until(lambda: (apps.read_namespaced_deployment("web", "default").status.ready_replicas or 0) == 1,
              "the web Deployment ready")
        url = f"http://{host.real_node().link.node_ip}:{INGRESS_NODE_PORTS['http']}/"
        tenant, on_host = client.NetworkingV1Api(vc.api_client()), client.NetworkingV1Api(host.api_client())
        copied, serving = [], []
        print(f"{args.samples} Ingresses, one at a time …", flush=True)
        for i in range(args.samples):
            name, hostname = f"site-{i}", f"site-{i}-{uuid.uuid4().hex[:6]}.{DOMAIN}"
            start = time.monotonic()
            tenant.create_namespaced_ingress("default", ingress(name, hostname))
            copy = names.host_name(name, "default", VCLUSTER)
            until(lambda: [obj for obj in on_host.list_namespaced_ingress(HOST_NAMESPACE).items
                           if obj.metadata.name == copy], "the host copy")
            copied.append(time.monotonic() - start)
            until(lambda: served(url, hostname), "the page served")
            serving.append(time.monotonic() - start)
        for label, values in (("created → host copy", copied), ("created → page served", serving)):
            print(f"{label:<24} median {statistics.median(values) * 1000:6.0f} ms   "
                  f"p95 {percentile(values, 95) * 1000:6.0f} ms")
        print(f"syncer RSS with {args.samples} Ingresses: {rss_mib(proc.pid):.0f} MiB")


if __name__ == "__main__":
    main()
