"""Tenant network isolation, enforced: two vclusters of two teams on a real node.

Provisioning puts each vcluster in a host namespace with two NetworkPolicies
(provisioning/manifests.py `network_policies`): ingress only from the same namespace;
egress to the same namespace and public addresses, and a third for the vcluster's own
API server (each vcluster runs its own CoreDNS in its namespace). Here both
vclusters run through the pipeline on the session's host cluster with a real node,
where kube-router's firewall enforces those policies, and each tenant (`red`, `blue`)
runs a busybox httpd behind a Service and a client pod, created through its own
vcluster and run on the node by its syncer. Every probe is a TCP connect from the host
copy of a tenant's client pod (`kubectl exec` with the host's admin credentials), with
a 2-second timeout, and each exec that expects a refusal also fetches the tenant's own
Service in the same shell, so a closed probe cannot come from a broken pod or network.
A bystander pod in a host namespace without policies shows that each forbidden
address does answer when no policy is in the way. Every case is tried in both
directions, each a test of its own.

What this proves: on a real node, with the policies provisioning writes, a tenant pod
reaches its own Service by ClusterIP and cannot open a TCP connection to the other
tenant's pod or Service, to the host API server (through the `kubernetes` Service or at
the address the node uses), to the kubelet on the node's address, to the registry (no
pod does: the node keeps it for containerd),
to another namespace's pod, or to the host's CoreDNS (which would name every other
namespace's Services), on its DNS port or another; and a pod
elsewhere on the host cannot connect to a tenant's pod.

What it does not prove: that public addresses are reachable (the node has no route
out of the machine); UDP or ICMP (only TCP is probed); traffic between nodes (there is
one real node); IPv6 (the node has none);
anything about kwok nodes, where nothing is enforced. And it shows a gap rather than
proving its absence: kube-router v2.1.0 programs a new pod's firewall only after the
API reports the pod's IP, so for its first moments a pod's connections are not
filtered (`test_a_new_tenant_pod_is_filtered_from_its_first_connection`, expected to
fail until the node denies pods it has not programmed yet).

The vclusters are provisioned once for the module, in a transaction rolled back at the
end, because each provisioning starts a control plane and a syncer.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import transaction
from django.test import override_settings
from kubernetes import client

from accounts.audit import SYSTEM
from localkube import LocalCluster
from controlplane.files import write_private
from controlplane.images import reference, registry_address
from localkube.network import NodeLink, cluster_id
from localkube.realnode import CLUSTER_DNS_IP, KUBELET_PORT
from localkube.testing import kubectl
from provisioning.hostclusters import services
from provisioning.runtimes import kubeobjects
from syncer import names
from tests.kube.helpers import eventually, new_namespace
from tests.kube.test_real_node import run_pod
from tests.portal.conftest import make_team
from vclusters.models import Phase

from .conftest import _provisioner

pytestmark = pytest.mark.django_db  # so that the test database is set up; see `tenants`

TEAMS = ("red", "blue")
DIRECTIONS = [pytest.param(*pair, id="-to-".join(pair)) for pair in (TEAMS, TEAMS[::-1])]
HTTP_PORT = 8080
HTTPD = "mkdir -p /www && echo served-by-{marker} > /www/index.html && exec httpd -f -p 8080 -h /www"
SMALL = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}


@dataclass(frozen=True)
class Tenant:
    team: str
    kubeconfig: Path  # the vcluster's admin kubeconfig
    host_namespace: str
    client_pod: str  # the host copy of the client pod
    server_ip: str  # the httpd pod's IP
    service_ip: str  # the httpd Service's ClusterIP, the same inside the vcluster and on the host


@dataclass(frozen=True)
class Host:
    cluster: LocalCluster
    netns: str  # the real node's network namespace
    bystander_namespace: str
    bystander_ip: str


def tenant_manifest(team: str) -> list[dict]:
    def pod(name: str, script: str) -> dict:
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": reference("busybox"), "command": ["sh", "-c", script], "resources": SMALL},
            ]},
        }

    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": HTTP_PORT}]},
    }
    return [pod("web", HTTPD.format(marker=team)), pod("client", "exec sleep 3600"), service]


def apply(kubeconfig: Path, objects: list[dict]) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def host_copies(core: client.CoreV1Api, namespace: str, list_kind) -> dict[str, object]:
    """The syncer's host copies in `namespace`, by the name of their virtual object."""
    found = {}
    for item in list_kind(namespace).items:
        annotations = item.metadata.annotations or {}
        if annotations.get(names.ANN_NAMESPACE) == "default" and names.ANN_NAME in annotations:
            found[annotations[names.ANN_NAME]] = item
    return found


def ready(pod) -> bool:
    return pod.status.pod_ip and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def firewalled(host: Host, pod_ip: str) -> bool:
    """True once kube-router has put `pod_ip` behind the vcluster's egress policy."""
    rules = subprocess.run(["ip", "netns", "exec", host.netns, "iptables-save", "-t", "filter"],
                           capture_output=True, text=True, check=True).stdout
    return any(f"-s {pod_ip}/32" in line and "policy vcluster-egress" in line for line in rules.splitlines())


def deploy(host: Host, team: str, vcluster, kubeconfig: Path) -> Tenant:
    """The tenant's pods and Service, created in its vcluster; returned once their host
    copies are Ready, the Service has one ClusterIP on both sides and the firewall
    covers the pods."""
    apply(kubeconfig, tenant_manifest(team))
    core = client.CoreV1Api(host.cluster.api_client())
    namespace = vcluster.placement.host_namespace

    def running():
        pods = host_copies(core, namespace, core.list_namespaced_pod)
        return {"web", "client"} <= pods.keys() and all(ready(pods[n]) for n in ("web", "client")) and pods

    pods = eventually(running, timeout=180, what=f"{team}'s pods Ready on the real node")

    def service_ip():
        host_service = host_copies(core, namespace, core.list_namespaced_service).get("web")
        virtual = kubectl(kubeconfig, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
        return host_service and host_service.spec.cluster_ip == virtual and virtual

    ip = eventually(service_ip, timeout=60, what=f"{team}'s Service with the host's ClusterIP")
    for name in ("web", "client"):
        eventually(lambda: firewalled(host, pods[name].status.pod_ip), timeout=60,
                   what=f"kube-router to firewall {team}'s {name} pod")
    return Tenant(team, kubeconfig, namespace, pods["client"].metadata.name, pods["web"].status.pod_ip, ip)


@pytest.fixture(scope="module")
def host(real_host_cluster):
    core = client.CoreV1Api(real_host_cluster.api_client())
    namespace = new_namespace(core, "bystander")
    bystander = run_pod(real_host_cluster, namespace, "bystander", HTTPD.format(marker="bystander"))
    link = NodeLink(cluster_id(real_host_cluster.state_dir), real_host_cluster.config.node_link)
    yield Host(real_host_cluster, link.netns, namespace, bystander.status.pod_ip)
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def tenants(host, django_db_setup, django_db_blocker, tmp_path_factory) -> dict[str, Tenant]:
    """Two vclusters of two teams through the whole pipeline, each with its workload."""
    work = tmp_path_factory.mktemp("network-isolation")
    with django_db_blocker.unblock(), transaction.atomic(), override_settings(VAR_DIR=work / "var"):
        services.register_host_cluster(
            SYSTEM, name="test-real-host", kubeconfig=host.cluster.admin_kubeconfig.read_text(),
            runtime="kubernetes", access="nodeport", access_address=host.cluster.real_node().link.node_ip,
        )
        provisioner = _provisioner(world=None)
        provision = next(provisioner)
        try:
            deployed = {}
            for team in TEAMS:
                vcluster = provision(team, team=make_team(team))
                assert vcluster.phase == Phase.READY, vcluster.message
                kubeconfig = work / f"{team}.kubeconfig"
                write_private(kubeconfig, vcluster.kubeconfig)
                deployed[team] = deploy(host, team, vcluster, kubeconfig)
            yield deployed
        finally:
            next(provisioner, None)  # tears both down
            transaction.set_rollback(True)


# Probes -------------------------------------------------------------------------
def connect(address: str, label: str) -> str:
    """Shell: print `label=open` if a TCP connection to `address` opens within 2 s."""
    ip, port = address.rsplit(":", 1)
    return f"if nc -w 2 {ip} {port} </dev/null 2>/dev/null; then echo {label}=open; else echo {label}=closed; fi"


def own_service(tenant: Tenant) -> str:
    """Shell: print `control=open` if the tenant's own Service serves its page."""
    request = r"printf 'GET / HTTP/1.0\r\n\r\n'"
    return (f"if {request} | nc -w 2 {tenant.service_ip} 80 | grep -q served-by-{tenant.team}; "
            "then echo control=open; else echo control=closed; fi")


def exec_in(host: Host, namespace: str, pod: str, script: str) -> dict[str, str]:
    result = kubectl(host.cluster.admin_kubeconfig, "-n", namespace, "exec", pod, "--", "sh", "-c", script)
    return dict(line.split("=", 1) for line in result.stdout.split())


def probe(host: Host, tenant: Tenant, address: str) -> dict[str, str]:
    """From the tenant's client pod, in one exec: its own Service, then `address`."""
    return exec_in(host, tenant.host_namespace, tenant.client_pod, f"{own_service(tenant)}; {connect(address, 'target')}")


def from_bystander(host: Host, address: str) -> str:
    """Whether a pod under no policy connects to `address`: the address is live."""
    return exec_in(host, host.bystander_namespace, "bystander", connect(address, "target"))["target"]


BLOCKED = {"control": "open", "target": "closed"}


# Tests --------------------------------------------------------------------------
@pytest.mark.parametrize("team", TEAMS)
def test_a_tenant_pod_reaches_its_own_service_by_cluster_ip(tenants, host, team):
    tenant = tenants[team]
    assert probe(host, tenant, f"{tenant.server_ip}:{HTTP_PORT}") == {"control": "open", "target": "open"}


@pytest.mark.parametrize(("source", "other"), DIRECTIONS)
def test_a_tenant_pod_cannot_connect_to_the_other_tenants_pod(tenants, host, source, other):
    address = f"{tenants[other].server_ip}:{HTTP_PORT}"
    assert probe(host, tenants[other], address)["target"] == "open", "its own tenant reaches it"
    assert probe(host, tenants[source], address) == BLOCKED


@pytest.mark.parametrize(("source", "other"), DIRECTIONS)
def test_a_tenant_pod_cannot_connect_to_the_other_tenants_service(tenants, host, source, other):
    address = f"{tenants[other].service_ip}:80"
    assert probe(host, tenants[other], address)["target"] == "open", "its own tenant reaches it"
    assert probe(host, tenants[source], address) == BLOCKED


@pytest.mark.parametrize("team", TEAMS)
def test_a_tenant_pod_cannot_reach_the_host_api_server_through_the_kubernetes_service(tenants, host, team):
    address = "10.96.0.1:443"
    assert from_bystander(host, address) == "open"
    assert probe(host, tenants[team], address) == BLOCKED


def api_endpoint(host: Host) -> str:
    """Where the host's `kubernetes` Service leads: the API server as the node reaches it."""
    discovery = client.DiscoveryV1Api(host.cluster.api_client())
    endpoints = discovery.read_namespaced_endpoint_slice("kubernetes", "default")
    return f"{endpoints.endpoints[0].addresses[0]}:{endpoints.ports[0].port}"


@pytest.mark.parametrize("team", TEAMS)
def test_a_tenant_pod_cannot_reach_the_host_api_server_at_the_nodes_address_for_it(tenants, host, team):
    address = api_endpoint(host)
    assert from_bystander(host, address) == "open"
    assert probe(host, tenants[team], address) == BLOCKED


def private_address(host: Host, target: str) -> str:
    link = NodeLink(cluster_id(host.cluster.state_dir), host.cluster.config.node_link)
    if target == "registry":  # forwarded from the host end of the node link to 127.0.0.1
        return f"{link.host_ip}:{registry_address().rsplit(':', 1)[1]}"
    if target == "kubelet":
        return f"{link.node_ip}:{KUBELET_PORT}"
    if target == "another-namespace":
        return f"{host.bystander_ip}:{HTTP_PORT}"
    if target == "host-dns":  # DNS over TCP, through the kube-dns Service
        return f"{CLUSTER_DNS_IP}:53"
    core = client.CoreV1Api(host.cluster.api_client())
    coredns = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items[0]
    return f"{coredns.status.pod_ip}:8080"  # its health port


def test_no_pod_reaches_the_image_registry_which_takes_pushes_from_anyone(tenants, host):
    address = private_address(host, "registry")
    assert from_bystander(host, address) == "closed"  # kept for the node's containerd
    for tenant in tenants.values():
        assert probe(host, tenant, address) == BLOCKED


@pytest.mark.parametrize("target", ["kubelet", "another-namespace", "host-dns", "coredns-health"])
@pytest.mark.parametrize("team", TEAMS)
def test_a_tenant_pod_cannot_reach_a_private_address_outside_its_namespace(tenants, host, team, target):
    address = private_address(host, target)
    assert from_bystander(host, address) == "open"
    assert probe(host, tenants[team], address) == BLOCKED


@pytest.mark.parametrize("port", [2379, kubeobjects.KCM_PORT, 10250])  # kine, controller manager, syncer's kubelet API
@pytest.mark.parametrize("team", TEAMS)
def test_a_tenant_pod_reaches_only_the_api_port_of_its_control_planes_pod(tenants, host, team, port):
    """The control plane's pod shares the tenant's host namespace, whose policy lets
    its pods connect to each other: what keeps kine (no authentication), the controller
    manager and the syncer's kubelet API from them is that they listen on the pod's
    loopback only."""
    tenant = tenants[team]
    core = client.CoreV1Api(host.cluster.api_client())
    pod_ip = core.read_namespaced_pod(kubeobjects.POD, tenant.host_namespace).status.pod_ip
    script = f"{connect(f'{pod_ip}:{kubeobjects.API_PORT}', 'control')}; {connect(f'{pod_ip}:{port}', 'target')}"
    assert exec_in(host, tenant.host_namespace, tenant.client_pod, script) == BLOCKED


@pytest.mark.parametrize("team", TEAMS)
def test_a_pod_of_another_namespace_cannot_connect_to_a_tenant_pod(tenants, host, team):
    address = f"{tenants[team].server_ip}:{HTTP_PORT}"
    assert probe(host, tenants[team], address)["target"] == "open", "its own tenant reaches it"
    assert from_bystander(host, address) == "closed"


@pytest.mark.xfail(strict=True, reason=(
    "kube-router v2.1.0 filters a pod only once it has programmed the pod's chain, after the "
    "API reports the pod's IP: the first connections of a new pod pass (its --netpol-default-deny "
    "came later)"))
def test_a_new_tenant_pod_is_filtered_from_its_first_connection(tenants, host):
    tenant = tenants["red"]
    target = f"{host.bystander_ip}:{HTTP_PORT}"
    attempts = " ".join(str(i) for i in range(20))
    script = f"for i in {attempts}; do {connect(target, 'attempt$i')}; sleep 0.1; done; exec sleep 3600"
    pod = tenant_manifest("red")[1] | {"metadata": {"name": "early", "labels": {"app": "early"}}}
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", script]
    apply(tenant.kubeconfig, [pod])
    core = client.CoreV1Api(host.cluster.api_client())

    def attempts_logged():
        copy = host_copies(core, tenant.host_namespace, core.list_namespaced_pod).get("early")
        logs = copy and kubectl(host.cluster.admin_kubeconfig, "-n", tenant.host_namespace, "logs",
                                copy.metadata.name, check=False).stdout
        return logs and logs.count("attempt") == 20 and logs

    logs = eventually(attempts_logged, timeout=120, what="the new pod's 20 attempts in its log")
    assert "open" not in logs
