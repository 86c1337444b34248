"""A vcluster's workloads on a real node: its pods reach its own API server as
`kubernetes.default` with their own tokens, resolve its Services through its own
CoreDNS, show in `kubectl top`, crash and restart as on any cluster, and a chart's
webhook guards its custom resources.

Everything runs: the vcluster is provisioned by the pipeline on `real_host_cluster`,
its pods are synced by its syncer and started by containerd on the real node, its
NetworkPolicies are enforced by kube-router. Tenant objects are written through the
vcluster's admin kubeconfig; what a pod printed is read from its host copy's log with
the host's admin credentials (the vcluster's own `kubectl logs` is tested with the
syncer's kubelet endpoint).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from provisioning.hostkube import HostKube
from provisioning.runtimes import syncer_name
from syncer import names
from tests.kube.helpers import SMALL, busybox_pod, deployment, eventually, web_server
from tests.syncer.test_egress_traffic import install_guard

pytestmark = pytest.mark.django_db(transaction=True)


class Tenant:
    """One vcluster on the real host: write through its API, read its pods' logs on the host."""

    def __init__(self, vcluster, host_cluster):
        self.vcluster = vcluster
        self.core = client.CoreV1Api(HostKube(vcluster.kubeconfig).api)
        self.apps = client.AppsV1Api(HostKube(vcluster.kubeconfig).api)
        self.host = client.CoreV1Api(host_cluster.api_client())

    def run(self, name: str, script: str, restart: str = "Never") -> None:
        self.core.create_namespaced_pod("default", busybox_pod(name, script, restart=restart, resources=SMALL))

    def pod_metrics(self, namespace: str) -> list[dict]:
        return client.CustomObjectsApi(self.core.api_client).list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, "pods")["items"]

    def runtime_endpoint(self) -> tuple[str, int]:
        from provisioning.pipeline import Context

        context = Context(self.vcluster)
        return context.runtime.pod_api_endpoint(context.ref)

    def log(self, pod: str) -> str:
        host_name = names.host_name(pod, "default", syncer_name_of(self.vcluster))
        try:
            # The client turns an empty log (a container that has printed nothing yet) into None.
            return self.host.read_namespaced_pod_log(host_name, self.vcluster.placement.host_namespace) or ""
        except client.ApiException:
            return ""


def syncer_name_of(vcluster) -> str:
    from provisioning.pipeline import Context

    return syncer_name(Context(vcluster).ref)


@pytest.fixture
def tenant(provisioned_as_pods, real_host_cluster):
    """On the production runtime: the control plane and syncer are a pod beside these."""
    return Tenant(provisioned_as_pods("workloads"), real_host_cluster)


def test_a_pod_reaches_its_own_api_server_as_kubernetes_default_on_443(tenant):
    # busybox's TLS cannot talk to the API server; its answer to plain HTTP proves the
    # name led to one, and the only API server this vcluster's pods may reach is its own
    # (tests/provisioning/test_network_isolation.py). That it accepts the pods' own
    # tokens is shown by the vcluster's CoreDNS, which reads Services with its token.
    request = r"printf 'GET / HTTP/1.0\r\n\r\n'"
    tenant.run("api", f"until {request} | nc kubernetes.default.svc 443; do sleep 1; done; "
                      "echo service at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT")
    eventually(lambda: "HTTP request to an HTTPS server" in tenant.log("api"), timeout=120,
               what="an answer from the vcluster's API server")
    address, port = tenant.runtime_endpoint()
    assert f"service at {address}:{port}" in tenant.log("api")


def test_a_service_resolves_through_the_vclusters_own_dns_and_its_pods_show_in_kubectl_top(tenant):
    server = busybox_pod("web", web_server("served-in-the-vcluster"), restart="Always", resources=SMALL)
    tenant.apps.create_namespaced_deployment("default", deployment("web", server.spec))
    tenant.core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    ))
    host_copy = names.host_name("web", "default", syncer_name_of(tenant.vcluster))
    service_ip = lambda: tenant.core.read_namespaced_service("web", "default").spec.cluster_ip  # noqa: E731
    eventually(lambda: service_ip() == tenant.host.read_namespaced_service(
        host_copy, tenant.vcluster.placement.host_namespace).spec.cluster_ip,
        what="the Service at its host copy's address")
    # The name exists only in the vcluster: the host's DNS knows no `web.default`.
    tenant.run("fetch", "echo web at $WEB_SERVICE_HOST:$WEB_SERVICE_PORT; "
                        "until timeout 5 wget -q -O - http://web.default.svc.cluster.local/; do sleep 1; done; "
                        "nslookup web.default.svc.cluster.local")
    eventually(lambda: "served-in-the-vcluster" in tenant.log("fetch"), timeout=150,
               what="the page fetched by the Service's DNS name")
    eventually(lambda: service_ip() in tenant.log("fetch"), what="nslookup answering the vcluster's Service address")
    assert f"web at {service_ip()}:80\n" in tenant.log("fetch"), "the Service's variables, as the kubelet gives them"
    # metrics.k8s.io, aggregated by the API server in the control plane's pod from the
    # syncer beside it, with the host metrics-server's figures for the server's host copy.
    measured = eventually(lambda: tenant.pod_metrics("default"), timeout=150, what="the web pods' figures")
    assert [m["metadata"]["name"].startswith("web-") for m in measured] == [True]


def test_a_crashing_container_restarts_and_the_vcluster_sees_its_restart_count(tenant):
    tenant.run("crasher", "echo started; sleep 1; exit 3", restart="Always")

    def restarted_twice():
        statuses = tenant.core.read_namespaced_pod("crasher", "default").status.container_statuses or []
        return statuses and statuses[0].restart_count >= 2 and statuses[0].last_state.terminated

    terminated = eventually(restarted_twice, timeout=150, what="two restarts visible in the vcluster")
    assert terminated.exit_code == 3


def test_a_chart_with_a_webhook_installs_and_its_webhook_guards(tenant, tmp_path):
    """The API server in the control plane's pod calls the tenant's webhook through the
    syncer beside it (syncer.egress): the escapes are tried in tests/syncer/test_egress_traffic.py."""
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(tenant.vcluster.kubeconfig)
    install_guard(kubeconfig, tenant.core.api_client)
