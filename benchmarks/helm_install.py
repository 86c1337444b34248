#!/usr/bin/env python
"""The Helm chart on the embedded host: install to serving, the first vcluster through the
installed portal against `make run`'s, and the installed portal's idle footprint.

    .venv/bin/python benchmarks/helm_install.py [--installs 3] [--count 3]

As root, after `make kube` and `make images`. Starts its own host cluster with a real
node (in a temporary directory), then:
  - `--installs` times, a fresh release in a fresh namespace, installed as
    `make install-demo` installs it (localkube.demo.install): from `helm upgrade --install`
    until the portal answers /readyz through its node port and an API token is made;
    each then uninstalled with its namespace. The first also pulls the images onto the
    node: printed on its own, the median is of the rest with it.
  - One release kept, and beside it `scripts/run.sh` (what `make run` runs: portal
    processes on this machine) in its own var directory and ports, registering the same
    host cluster with the same `kubernetes` runtime. Alternating, `--count` vclusters each
    through the REST API, create to Ready (each deleted before the next: a 2-core node
    has room for few control planes beside the portal); the ratio of the medians.
  - After 60 s idle, the working set of every pod of the release (the kubelet's summary
    API, as `kubectl top` reads it), and their sum.
Targets: install to serving <= 120 s warm; first vcluster through the chart <= 1.2x
through `make run` (same host, same runtime); idle footprint <= 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from kubernetes import client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import Stack  # noqa: E402
from localkube import LocalCluster, demo  # noqa: E402
from localkube.binaries import helm  # noqa: E402

STATE = Path(tempfile.mkdtemp(prefix="helmbench-"))
SERVING_TARGET_S, RATIO_TARGET, FOOTPRINT_TARGET_MIB = 120, 1.2, 1536


def timed_install(host: LocalCluster, release: str, namespace: str) -> tuple[float, demo.Installed]:
    started = time.monotonic()
    installed = demo.install(host, release=release, namespace=namespace, node_ports=(free_node_port(host), free_node_port(host)))
    return time.monotonic() - started, installed


def free_node_port(host: LocalCluster, taken: set[int] = set()) -> int:
    services = client.CoreV1Api(host.api_client()).list_service_for_all_namespaces().items
    taken |= {p.node_port for s in services for p in s.spec.ports or [] if p.node_port}
    port = next(p for p in range(30100, 32768) if p not in taken)
    taken.add(port)
    return port


def uninstall(host: LocalCluster, release: str, namespace: str) -> None:
    subprocess.run([str(helm()), "uninstall", release, "-n", namespace, "--wait", "--kubeconfig",
                    str(host.admin_kubeconfig)], check=True, capture_output=True, timeout=600)
    core = client.CoreV1Api(host.api_client())
    core.delete_namespace(namespace)
    while any(n.metadata.name == namespace for n in core.list_namespace().items):
        time.sleep(1)


class Api:
    def __init__(self, url: str, token: str):
        self.url, self.headers = url, {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/api/v1/{path}", headers=self.headers, timeout=30, **kwargs)

    def create_to_ready(self, team: str, name: str) -> float:
        started = time.monotonic()
        created = self.call("POST", "vclusters/", json={"team": team, "name": name})
        assert created.status_code == 201, created.text
        while (body := self.call("GET", f"vclusters/{created.json()['id']}/").json())["phase"] != "Ready":
            if body["phase"] == "Failed" or time.monotonic() - started > 600:
                raise SystemExit(f"{name} did not become Ready: {body['message']}")
            time.sleep(0.5)
        seconds = time.monotonic() - started
        self.delete(created.json()["id"])  # the node has room for a few control planes only
        return seconds

    def delete(self, vcluster: int) -> None:
        assert self.call("DELETE", f"vclusters/{vcluster}/").status_code == 202
        deadline = time.monotonic() + 300
        while (phase := self.call("GET", f"vclusters/{vcluster}/").json()["phase"]) != "Deleted":
            if phase == "DeleteFailed" or time.monotonic() > deadline:
                raise SystemExit(f"vcluster {vcluster} was not deleted: {phase}")
            time.sleep(1)


def working_sets_mib(host: LocalCluster, namespace: str) -> dict[str, float]:
    core = client.CoreV1Api(host.api_client())
    found = {}
    for node in core.list_node().items:
        if node.metadata.name.startswith("realnode"):
            answer = core.connect_get_node_proxy_with_path(node.metadata.name, "stats/summary", _preload_content=False)
            summary = json.loads(answer.data)
            found.update({pod["podRef"]["name"]: pod["memory"]["workingSetBytes"] / 2**20
                          for pod in summary["pods"] if pod["podRef"]["namespace"] == namespace})
    return found


def make_run_beside(host: LocalCluster) -> tuple[Stack, Api]:
    stack = Stack("sqlite")
    stack.env["VCPORTAL_HOSTCLUSTER_DIR"] = str(host.state_dir)  # the same host: run.sh registers it
    stack.start()
    token = subprocess.run([sys.executable, "manage.py", "create_api_token", "admin", "--name", "bench"], cwd=ROOT,
                           env=stack.env, capture_output=True, text=True, check=True).stdout.strip()
    return stack, Api(stack.url, token)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installs", type=int, default=3)
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the host cluster needs a real node")
    host, stack = LocalCluster(STATE / "host"), None
    try:
        host.init(name="helmbench", nodes=1, real_nodes=1)
        host.start(timeout=240)
        installs = []
        for i in range(args.installs):
            seconds, _ = timed_install(host, f"b{i}", f"helmbench-{i}")
            installs.append(seconds)
            print(f"install {i + 1}: {seconds:.1f} s", flush=True)
            uninstall(host, f"b{i}", f"helmbench-{i}")
        seconds, installed = timed_install(host, "kept", "helmbench-kept")
        installs.append(seconds)
        chart = Api(installed.url, installed.token)
        assert chart.call("POST", "teams/", json={"name": "Demo"}).status_code == 201
        stack, make_run = make_run_beside(host)
        times = {"chart": [], "make run": []}
        for i in range(args.count):
            times["chart"].append(chart.create_to_ready("demo", f"chart-{i}"))
            times["make run"].append(make_run.create_to_ready("demo", f"run-{i}"))
            print(f"vcluster {i + 1}: chart {times['chart'][-1]:.1f} s, make run {times['make run'][-1]:.1f} s", flush=True)
        time.sleep(60)
        footprint = working_sets_mib(host, "helmbench-kept")
    finally:
        if stack:
            stack.stop()
            stack.remove()
        host.stop()
    warm = statistics.median(installs[1:]) if len(installs) > 1 else installs[0]
    ratio = statistics.median(times["chart"]) / statistics.median(times["make run"])
    total = sum(footprint.values())
    print(f"\nHelm chart on the embedded host ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
    print(f"install to serving, first (pulls the images): {installs[0]:.1f} s")
    print(f"install to serving, median of the next {len(installs) - 1}: {warm:.1f} s "
          f"({', '.join(f'{s:.1f}' for s in installs[1:])})   target <= {SERVING_TARGET_S} s")
    for where, values in times.items():
        print(f"first vcluster Ready through {where}: median {statistics.median(values):.1f} s "
              f"({', '.join(f'{s:.1f}' for s in values)})")
    print(f"ratio chart / make run: {ratio:.2f}   target <= {RATIO_TARGET}")
    print(f"idle footprint, {len(footprint)} pods: {total:.0f} MiB   target <= {FOOTPRINT_TARGET_MIB} MiB")
    for pod, mib in sorted(footprint.items(), key=lambda item: -item[1]):
        print(f"  {pod:<45}{mib:>8.0f} MiB")
    missed = [what for what, ok in (("install", warm <= SERVING_TARGET_S), ("ratio", ratio <= RATIO_TARGET),
                                    ("footprint", total <= FOOTPRINT_TARGET_MIB)) if not ok]
    print(f"\nmissed: {', '.join(missed)}" if missed else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
