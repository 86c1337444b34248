"""A real node in a local host cluster: containers run, log, answer exec and resolve names.

Everything here is real: containerd and runc start the containers, images are pulled
from the local registry that `make images` fills, kube-proxy programs Services and
CoreDNS answers. These tests need root, `make kube` and `make images`; select them
with `-m realnode`.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client

from localkube import LocalCluster
from localkube.network import NodeLink, cluster_id
from localkube.realnode import NODE_NAME
from localkube.testing import kubectl

from .helpers import busybox_pod, eventually, logs, new_namespace, run_pod, web_server

pytestmark = [pytest.mark.kube, pytest.mark.realnode]


@contextmanager
def real_node_cluster(state_dir, name: str) -> Iterator[LocalCluster]:
    """A host cluster with one kwok node and one real node, stopped (with everything
    its node made) even when it fails to start."""
    cluster = LocalCluster(state_dir)
    cluster.init(name=name, nodes=1, real_nodes=1)
    try:
        cluster.start(timeout=240)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def real_cluster(real_host_cluster):
    return real_host_cluster


@pytest.fixture(scope="module")
def second_cluster(tmp_path_factory):
    with real_node_cluster(tmp_path_factory.mktemp("second"), "second") as cluster:
        yield cluster


def test_a_pod_pulled_from_the_local_registry_runs_on_the_real_node_and_logs(real_cluster):
    core = client.CoreV1Api(real_cluster.api_client())
    ns = new_namespace(core)
    line = f"hello {uuid.uuid4().hex}"
    pod = run_pod(real_cluster, ns, "hello", f"echo {line}; sleep 3600")

    assert pod.spec.node_name == NODE_NAME  # the kwok node is tainted
    assert pod.status.pod_ip.startswith("10.88.")
    eventually(lambda: line in logs(real_cluster, ns, "hello"), what="the line in kubectl logs")


def test_exec_runs_a_command_in_the_container(real_cluster):
    ns = new_namespace(client.CoreV1Api(real_cluster.api_client()))
    run_pod(real_cluster, ns, "shell", "sleep 3600")
    result = kubectl(real_cluster.admin_kubeconfig, "-n", ns, "exec", "shell", "--", "id")
    assert result.stdout.startswith("uid=0(root) gid=0(root)")


def test_pods_reach_a_service_by_its_dns_name(real_cluster):
    core = client.CoreV1Api(real_cluster.api_client())
    ns = new_namespace(core)
    run_pod(real_cluster, ns, "web", web_server("served-by-web"))
    core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    ))
    url = f"http://web.{ns}.svc.cluster.local/"
    # Each try is bounded (busybox's wget crashes with -T): a connection sent before kube-proxy has
    # programmed the new Service can wait minutes for its SYN's retries.
    run_pod(real_cluster, ns, "fetch", f"until timeout 5 wget -q -O - {url}; do sleep 1; done")
    eventually(lambda: "served-by-web" in logs(real_cluster, ns, "fetch"), timeout=90,
               what="the page fetched through the Service's DNS name")


def test_pods_reach_the_api_server_through_the_kubernetes_service(real_cluster):
    # busybox speaks no TLS the API server accepts; its answer to plain HTTP proves
    # that the Service led to it.
    ns = new_namespace(client.CoreV1Api(real_cluster.api_client()))
    request = r"printf 'GET / HTTP/1.0\r\n\r\n'"
    run_pod(real_cluster, ns, "api", f"until {request} | nc kubernetes.default.svc 443; do sleep 1; done")
    eventually(lambda: "HTTP request to an HTTPS server" in logs(real_cluster, ns, "api"), timeout=90,
               what="an answer from the API server")
    # The address is published as an API server's reconciler would: the Endpoints too,
    # which clients and the conformance suite read (`kubectl get endpoints kubernetes`).
    core, discovery = client.CoreV1Api(real_cluster.api_client()), client.DiscoveryV1Api(real_cluster.api_client())
    subset = core.read_namespaced_endpoints("kubernetes", "default").subsets[0]
    endpoint_slice = discovery.read_namespaced_endpoint_slice("kubernetes", "default")
    node_side = [real_cluster.real_node().link.host_ip]
    assert [a.ip for a in subset.addresses] == endpoint_slice.endpoints[0].addresses == node_side
    assert [p.port for p in subset.ports] == [p.port for p in endpoint_slice.ports]


def fetch(cluster: LocalCluster, namespace: str, pod: str, address: str) -> str:
    """What `pod` gets from an HTTP server at `address` (ip:port), or "" when refused
    or dropped within 2 seconds."""
    request = r"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 " + address.replace(":", " ")
    return kubectl(cluster.admin_kubeconfig, "-n", namespace, "exec", pod, "--", "sh", "-c", request, check=False).stdout


def test_network_policies_are_enforced(real_cluster):
    core = client.CoreV1Api(real_cluster.api_client())
    server_ns, other_ns = new_namespace(core, "srv"), new_namespace(core, "other")
    server = run_pod(real_cluster, server_ns, "web", web_server("served"))
    run_pod(real_cluster, server_ns, "neighbour", "sleep 3600")
    run_pod(real_cluster, other_ns, "stranger", "sleep 3600")
    address = f"{server.status.pod_ip}:8080"
    eventually(lambda: "served" in fetch(real_cluster, other_ns, "stranger", address), what="open access")

    networking = client.NetworkingV1Api(real_cluster.api_client())
    networking.create_namespaced_network_policy(server_ns, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="same-namespace-only"),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(),
            policy_types=["Ingress"],
            ingress=[client.V1NetworkPolicyIngressRule(_from=[client.V1NetworkPolicyPeer(pod_selector=client.V1LabelSelector())])],
        ),
    ))

    eventually(lambda: fetch(real_cluster, other_ns, "stranger", address) == "", what="the stranger to be cut off")
    assert "served" in fetch(real_cluster, server_ns, "neighbour", address)


def test_pods_reach_no_other_service_of_the_machine(real_cluster):
    """Only the API server and registry ports are forwarded from the node; a server
    listening on every address of the machine stays out of the pods' reach."""
    ns = new_namespace(client.CoreV1Api(real_cluster.api_client()))
    run_pod(real_cluster, ns, "prober", "sleep 3600")
    link = NodeLink(cluster_id(real_cluster.state_dir), real_cluster.config.node_link)
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        probe = f"echo hi | nc -w 2 {link.host_ip} {port} && echo connected"
        result = kubectl(real_cluster.admin_kubeconfig, "-n", ns, "exec", "prober", "--", "sh", "-c", probe, check=False)
    assert "connected" not in result.stdout


def test_two_real_node_clusters_run_side_by_side(real_cluster, second_cluster):
    first_link = NodeLink(cluster_id(real_cluster.state_dir), real_cluster.config.node_link)
    second_link = NodeLink(cluster_id(second_cluster.state_dir), second_cluster.config.node_link)
    assert first_link.netns != second_link.netns and first_link.host_ip != second_link.host_ip

    for cluster in (real_cluster, second_cluster):
        ns = new_namespace(client.CoreV1Api(cluster.api_client()))
        run_pod(cluster, ns, "side", f"echo in {cluster.config.name}; sleep 3600")
        eventually(lambda: f"in {cluster.config.name}" in logs(cluster, ns, "side"), what="the line")


def test_stop_leaves_nothing_behind(second_cluster):
    node = second_cluster.real_node()
    assert node.leftovers()["processes"], "a running node has processes"

    second_cluster.stop()

    assert node.leftovers() == {"processes": [], "mounts": [], "cgroups": []}


def test_a_restart_brings_the_workloads_back(real_cluster):
    core = client.CoreV1Api(real_cluster.api_client())
    ns = new_namespace(core)
    pod = busybox_pod("keeper", "echo started; sleep 3600")
    pod.spec.restart_policy = "Always"
    core.create_namespaced_pod(ns, pod)
    eventually(lambda: "started" in logs(real_cluster, ns, "keeper"), timeout=120, what="the first start")
    first = core.read_namespaced_pod("keeper", ns).status.container_statuses[0].container_id

    real_cluster.stop()
    real_cluster.start(timeout=240)

    def running_again():
        status = core.read_namespaced_pod("keeper", ns).status.container_statuses[0]
        return status.container_id != first and status.state.running and "started" in logs(real_cluster, ns, "keeper")

    eventually(running_again, timeout=180, what="the pod's container to run again after the restart")


def test_hostcluster_command_starts_reports_and_stops_a_real_node(tmp_path):
    from .test_hostcluster_command import manage

    state = tmp_path / "host"
    started = manage("start", "--state-dir", str(state), "--nodes", "0", "--real-nodes", "1")
    try:
        assert started.returncode == 0, started.stderr
        nodes = kubectl(started.stdout.strip().splitlines()[-1], "get", "nodes", "-o", "name").stdout.split()
        assert nodes == [f"node/{NODE_NAME}"]
        status = manage("status", "--state-dir", str(state))
        assert status.returncode == 0, status.stdout
        lines = {line.split()[0]: line for line in status.stdout.splitlines()}
        for process in ("containerd", "kubelet", "kube-proxy"):
            assert "running (pid" in lines[process]
    finally:
        stopped = manage("stop", "--state-dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert LocalCluster(state).real_node().leftovers() == {"processes": [], "mounts": [], "cgroups": []}
