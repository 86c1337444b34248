"""`kubectl top` and HorizontalPodAutoscalers inside a vcluster, for real: the embedded
host's metrics-server (localkube.addons) scrapes the real node's kubelet; each
vcluster's API server aggregates metrics.k8s.io from its syncer (syncer.metricsapi),
which answers from the host's figures for its own pods only. The escape attempts: another
tenant's pods and load, a caller without rights, and a client that is not the vcluster's
API server calling the syncer directly with a certificate it could get from the vcluster."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess

import pytest
import yaml
from kubernetes import client

from controlplane.images import reference
from localkube.realnode import NODE_NAME
from syncer.metricsapi import parse_quantity
from tests.kube.helpers import eventually

# Each scrape is 15 s apart and a CPU figure needs two: a new pod has figures within ~30 s.
FIGURES_TIMEOUT = 150


def pod(name: str, command: str, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": reference("busybox"), "command": ["sh", "-c", command],
                "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
            }]}}


BUSY = "while :; do :; done"
IDLE = "trap 'exit 0' TERM; while :; do sleep 1; done"


def metrics(vc, path: str) -> dict:
    """GET /apis/metrics.k8s.io/v1beta1/`path` in the vcluster, as the tenant's admin."""
    api, group = client.CustomObjectsApi(vc.tenant.api), ("metrics.k8s.io", "v1beta1")
    match path.split("/"):
        case ["namespaces", namespace, plural]:
            return api.list_namespaced_custom_object(*group, namespace, plural)
        case ["namespaces", namespace, plural, name]:
            return api.get_namespaced_custom_object(*group, namespace, plural, name)
        case [plural]:
            return api.list_cluster_custom_object(*group, plural)
        case [plural, name]:
            return api.get_cluster_custom_object(*group, plural, name)


def pod_cpu(vc, namespace: str, name: str) -> float:
    found = metrics(vc, f"namespaces/{namespace}/pods/{name}")
    return float(sum(parse_quantity(c["usage"]["cpu"]) for c in found["containers"]))


def kubectl(vc, *args: str, kubeconfig=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(vc.cluster.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or vc.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=60)


def running(vc, name: str) -> bool:
    return vc.tenant.core.read_namespaced_pod(name, "default").status.phase == "Running"


@pytest.mark.realnode
def test_kubectl_top_shows_the_tenants_own_pods_with_the_hosts_figures(make_real_vcluster, tmp_path):
    busy, quiet = make_real_vcluster("busy"), make_real_vcluster("quiet")
    busy.tenant.core.create_namespaced_pod("default", pod("burner", BUSY))
    quiet.tenant.core.create_namespaced_pod("default", pod("sleeper", IDLE))
    for vc, name in ((busy, "burner"), (quiet, "sleeper")):
        eventually(lambda: running(vc, name), timeout=120, what=f"{name} running")

    burner = eventually(lambda: pod_cpu(busy, "default", "burner") > 0.05 and pod_cpu(busy, "default", "burner"),
                        timeout=FIGURES_TIMEOUT, what="the burner's CPU in the vcluster's metrics.k8s.io")
    assert burner <= 0.15  # its limit is 100m: the host's figure for its host copy, not the node's
    top = kubectl(busy, "top", "pod", "--no-headers")
    assert top.returncode == 0, top.stderr
    assert [line.split()[0] for line in top.stdout.splitlines()] == ["burner"]  # no host pod, no other tenant's
    assert top.stdout.split()[1].endswith("m")
    assert kubectl(busy, "top", "node", "--no-headers").stdout.split()[0] == NODE_NAME
    assert metrics(busy, "namespaces/default/pods/burner")["metadata"]["labels"] == {"app": "burner"}

    # The other tenant sees its own pod only, and on the shared node only its own load.
    eventually(lambda: metrics(quiet, "namespaces/default/pods")["items"], timeout=FIGURES_TIMEOUT,
               what="the sleeper's figures")
    seen = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in metrics(quiet, "pods")["items"]]
    assert seen == [("default", "sleeper")]
    assert float(parse_quantity(metrics(quiet, f"nodes/{NODE_NAME}")["usage"]["cpu"])) < burner / 2
    with pytest.raises(client.ApiException) as missing:
        metrics(quiet, "namespaces/default/pods/burner")
    assert missing.value.status == 404

    only_callers_with_rights_read_metrics(busy, tmp_path / "viewer.kubeconfig")
    nothing_but_the_api_server_reaches_the_syncer(busy)


def only_callers_with_rights_read_metrics(vc, viewer):
    vc.cluster.write_kubeconfig(viewer, "ada")
    denied = kubectl(vc, "top", "pod", "-n", "default", kubeconfig=viewer)
    assert denied.returncode != 0 and "forbidden" in denied.stderr and 'User "ada"' in denied.stderr
    # `view` reads metrics (the syncer's aggregated ClusterRole), in its namespace only.
    vc.tenant.rbac.create_namespaced_role_binding("default", {
        "metadata": {"name": "ada-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ada"}]})
    allowed = eventually(lambda: (r := kubectl(vc, "top", "pod", "-n", "default", kubeconfig=viewer)).returncode == 0
                         and r.stdout, timeout=30, what="ada's kubectl top pod")
    assert "burner" in allowed
    assert kubectl(vc, "top", "pod", "-n", "kube-system", kubeconfig=viewer).returncode != 0


def nothing_but_the_api_server_reaches_the_syncer(vc):
    """A tenant can get a client certificate from the vcluster's CA (a CSR its controller
    manager signs), and may reach loopback in the local runtime: with it, or with none,
    the syncer refuses the connection, so nobody can claim to be another user there. With
    the API server's front-proxy certificate, the same request is answered."""
    address = yaml.safe_load(vc.config_path.read_text())["metrics_address"]
    pki = vc.cluster.pki_dir
    assert call_syncer(address, pki, "front-proxy-client") == 200
    for cert in ("admin", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            call_syncer(address, pki, cert)


def call_syncer(address: str, pki, cert: str | None, method: str = "GET",
                path: str = "/apis/metrics.k8s.io/v1beta1/pods", body: dict | None = None) -> int:
    """The status of a request (by default a list of all pods' metrics) as system:admin of
    system:masters, straight to the syncer with the client certificate `cert` from `pki` (or none)."""
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.check_hostname = False  # it names vcportal-metrics.kube-system.svc; the CA is still checked
    if cert:
        context.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    headers = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters", "Content-Type": "application/json"}
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.realnode
def test_a_horizontal_pod_autoscaler_in_a_vcluster_scales_a_busy_deployment(make_real_vcluster):
    vc = make_real_vcluster("hpa")
    template = pod("burner", BUSY)
    vc.tenant.apps.create_namespaced_deployment("default", {
        "metadata": {"name": "burner"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burner"}},
                 "template": {"metadata": template["metadata"] | {"name": None}, "spec": template["spec"]}}})
    client.AutoscalingV2Api(vc.tenant.api).create_namespaced_horizontal_pod_autoscaler("default", {
        "metadata": {"name": "burner"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burner"},
                 "minReplicas": 1, "maxReplicas": 2,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}})
    # 100m used of 20m requested: 500 % of the request, ten times the target.
    scaled = eventually(lambda: (s := vc.tenant.apps.read_namespaced_deployment("burner", "default")).spec.replicas == 2
                        and s, timeout=240, interval=2, what="the autoscaler scaling the burner to 2")
    assert scaled.spec.replicas == 2
    status = client.AutoscalingV2Api(vc.tenant.api).read_namespaced_horizontal_pod_autoscaler("burner", "default").status
    assert status.current_metrics[0].resource.current.average_utilization > 100
