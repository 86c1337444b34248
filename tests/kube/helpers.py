"""Small waits shared by the cluster tests: real clusters converge, they do not jump."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from kubernetes import client
from kubernetes.client.rest import ApiException

from localkube import LocalCluster
from controlplane.images import reference
from localkube.testing import kubectl

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 60, interval: float = 0.2, what: str = "") -> T:
    """Call `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ApiException as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last error: {last_error}")


def new_namespace(core: client.CoreV1Api, prefix: str = "t", labels: dict | None = None) -> str:
    """A fresh namespace whose `default` ServiceAccount exists, so it accepts pods."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    eventually(
        lambda: core.read_namespaced_service_account("default", name),
        what=f"default ServiceAccount in {name}",
    )
    return name


def pod(name: str, *, privileged: bool = False, cpu: str | None = None) -> client.V1Pod:
    resources = client.V1ResourceRequirements(requests={"cpu": cpu}, limits={"cpu": cpu}) if cpu else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="app",
                    image="registry.example/app:1",
                    resources=resources,
                    security_context=client.V1SecurityContext(privileged=True) if privileged else None,
                )
            ]
        ),
    )


# Room for a few busybox pods in a team's quota (1 CPU, 1 GiB), where defaults take 512Mi each.
SMALL = client.V1ResourceRequirements(requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "100m", "memory": "64Mi"})


def busybox_pod(name: str, script: str, stdin: bool = False, restart: str = "Never",
                resources: client.V1ResourceRequirements | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(
            restart_policy=restart,
            termination_grace_period_seconds=1,
            containers=[client.V1Container(name="main", image=reference("busybox"), command=["sh", "-c", script],
                                           stdin=stdin, resources=resources)],
        ),
    )


def deployment(name: str, pod_spec: client.V1PodSpec, replicas: int = 1) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=pod_spec),
        ),
    )


def run_pod(cluster: LocalCluster, namespace: str, name: str, script: str, stdin: bool = False) -> client.V1Pod:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod(namespace, busybox_pod(name, script, stdin))
    return eventually(
        lambda: (p := core.read_namespaced_pod(name, namespace)).status.phase in ("Running", "Succeeded") and p,
        timeout=120, what=f"pod {namespace}/{name} to run",
    )


def logs(cluster: LocalCluster, namespace: str, name: str) -> str:
    return kubectl(cluster.admin_kubeconfig, "-n", namespace, "logs", name, check=False).stdout


def web_server(page: str, port: int = 8080) -> str:
    """A busybox script serving `page` at / over HTTP on `port`."""
    return f"mkdir /www && echo {page} > /www/index.html && httpd -f -p {port} -h /www"
