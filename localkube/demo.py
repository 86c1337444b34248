"""`make install-demo`: the Helm chart installed into the embedded host cluster, as on any
cluster, with the images `make images` pushed to the local registry and the bundled
PostgreSQL and Redis. The portal serves on node ports of the real node, which this
machine reaches, so its pages, API and personal kubeconfigs work from here. A second run
upgrades the release in place (docs/helm.md#the-demo-on-this-machine)."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from kubernetes import client

from controlplane.images import check_registry, reference

from .binaries import bin_dir, helm
from .cluster import LocalCluster

CHART = Path(__file__).resolve().parents[1] / "charts" / "vcportal"
RELEASE = NAMESPACE = "vcportal"
HTTP_NODE_PORT, GATEWAY_NODE_PORT = 30080, 30443
# Sized for a 2-core machine beside `make run`: one of each.
SMALL = {"web.replicas": "1", "web.workers": "1", "worker.concurrency": "4"}
TIMEOUT = 900


class DemoError(RuntimeError):
    pass


def image_values() -> list[str]:
    """--set arguments naming the images in the local registry."""
    def tag(name: str) -> str:
        return reference(name).rsplit(":", 1)[1]

    registry = reference("vcportal").split("/", 1)[0]
    return ["--set", f"image.registry={registry}", "--set", f"image.tag={tag('vcportal')}",
            "--set", f"database.bundled.image.tag={tag('postgresql')}", "--set", f"redis.bundled.image.tag={tag('redis')}",
            "--set", f"hostCluster.runtimeImage={reference('vcluster-runtime')}",
            "--set", f"hostCluster.clusterDNSImage={reference('coredns')}",
            "--set", f"hostCluster.hostsImage={reference('busybox')}"]


@dataclass(frozen=True)
class Installed:
    url: str
    admin_password: str
    token: str  # a new API token of the admin


def install(cluster: LocalCluster, *, release: str = RELEASE, namespace: str = NAMESPACE,
            node_ports: tuple[int, int] = (HTTP_NODE_PORT, GATEWAY_NODE_PORT), values: tuple[str, ...] = ()) -> Installed:
    """Install or upgrade `release` with the local images, serving pages and API on the
    real node's first node port and the gateway on the second; `values`: more helm
    arguments, which win (the chart tests install this way too)."""
    check_registry()
    node, (http_port, gateway_port) = cluster.real_node().link.node_ip, node_ports
    url = f"http://{node}:{http_port}"
    _restricted_namespace(cluster, namespace)
    settings = {**SMALL, "url": url, "gateway.url": f"https://{node}:{gateway_port}",
                "web.service.type": "NodePort", "web.service.httpNodePort": str(http_port),
                "web.service.gatewayNodePort": str(gateway_port)}
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    _run([str(helm()), "upgrade", "--install", release, str(CHART), "--namespace", namespace, *image_values(), *sets,
          *values, "--wait", "--wait-for-jobs", "--timeout", f"{TIMEOUT}s", "--kubeconfig", str(cluster.admin_kubeconfig)])
    _wait_serving(url)
    web = _named(cluster, namespace, release, "web")
    token = _run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.admin_kubeconfig), "-n", namespace,
                  "exec", f"deploy/{web}", "-c", "web", "--",
                  "python3", "/app/manage.py", "create_api_token", "admin", "--name", "install-demo"]).strip()
    return Installed(url, _admin_password(cluster, namespace, release), token)


def _restricted_namespace(cluster: LocalCluster, namespace: str) -> None:
    """The release's namespace, enforcing the restricted Pod Security standard its pods meet."""
    core = client.CoreV1Api(cluster.api_client())
    labels = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def _named(cluster: LocalCluster, namespace: str, release: str, component: str) -> str:
    """The release's Deployment of `component`, by the chart's labels."""
    found = client.AppsV1Api(cluster.api_client()).list_namespaced_deployment(
        namespace, label_selector=f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}")
    return found.items[0].metadata.name


def _admin_password(cluster: LocalCluster, namespace: str, release: str) -> str:
    secrets = client.CoreV1Api(cluster.api_client()).list_namespaced_secret(
        namespace, label_selector=f"app.kubernetes.io/instance={release}").items
    return next(base64.b64decode(s.data["admin-password"]).decode() for s in secrets if "admin-password" in (s.data or {}))


def _wait_serving(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"the portal does not answer at {url}/readyz after {timeout:.0f} s")
        time.sleep(1)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=sys.stderr, text=True, timeout=TIMEOUT + 60)
    if done.returncode != 0:
        raise DemoError(f"{Path(command[0]).name} {command[1]} failed (exit {done.returncode}; see above)")
    return done.stdout
