"""The vcluster API server's outbound calls through its syncer (syncer.egress), for real:
a chart with a CRD and a validating webhook (charts/guard: the webhook a Python script in
the vcluster runtime's image, its certificate made by Helm) installed with `helm install
--wait`, its webhook called by the vcluster's API server through the syncer and the host's
pods/portforward, and the same API server unable to reach anything outside its vcluster:
the host's API server, the node's kubelet, by URL webhook, by a Service with hand-written
Endpoints or by an APIService."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from controlplane.images import reference
from localkube.binaries import helm
from localkube.realnode import KUBELET_PORT
from tests.kube.helpers import eventually

CHART = Path(__file__).with_name("charts") / "guard"


def widget(name: str, size: int) -> dict:
    return {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}


def install_guard(kubeconfig: Path, api: client.ApiClient) -> None:
    """charts/guard installed with --wait into a vcluster, and its webhook shown to guard."""
    installed = subprocess.run(
        [str(helm()), "install", "guard", str(CHART), "--kubeconfig", str(kubeconfig), "--namespace", "default",
         "--wait", "--timeout", "4m", "--set", f"image={reference('vcluster-runtime')}"],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    widgets = client.CustomObjectsApi(api)
    created = eventually(lambda: widgets.create_namespaced_custom_object(
        "example.test", "v1", "default", "widgets", widget("small", 3)), timeout=30, what="a small Widget admitted")
    assert created["spec"] == {"size": 3}
    with pytest.raises(client.ApiException) as refused:
        widgets.create_namespaced_custom_object("example.test", "v1", "default", "widgets", widget("huge", 99))
    assert "size 99 is over the limit of 10" in refused.value.body  # the tenant's webhook answered


@pytest.mark.realnode
def test_a_chart_with_a_crd_and_a_webhook_installs_and_its_webhook_guards(make_real_vcluster):
    vc = make_real_vcluster("guard")
    install_guard(vc.kubeconfig, vc.tenant.api)


def webhook(name: str, client_config: dict) -> dict:
    return {"metadata": {"name": name}, "webhooks": [{
        "name": f"{name}.example.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail", "timeoutSeconds": 5, "clientConfig": client_config,
        "namespaceSelector": {"matchLabels": {"guarded": name}},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "operations": ["CREATE"]}]}]}


def refusal(core: client.CoreV1Api, namespace: str) -> client.ApiException | None:
    """Why a ConfigMap cannot be created in `namespace`; None if it was (the webhook not in force yet)."""
    try:
        core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "probe-"}})
    except client.ApiException as exc:
        return exc
    return None


@pytest.mark.realnode
def test_the_vclusters_api_server_reaches_nothing_outside_its_vcluster(make_real_vcluster, real_host_cluster):
    vc = make_real_vcluster("closed")
    host_ca = base64.b64encode(real_host_cluster.ca_cert_path.read_bytes()).decode()
    node_ip = real_host_cluster.real_node().link.node_ip
    admission = client.AdmissionregistrationV1Api(vc.tenant.api)
    core = vc.tenant.core
    # A selector-less Service whose hand-written Endpoints name the host's API server.
    core.create_namespaced_service("default", {"metadata": {"name": "host-api"},
                                               "spec": {"ports": [{"port": 443, "name": "https"}]}})
    core.create_namespaced_endpoints("default", {"metadata": {"name": "host-api"}, "subsets": [{
        "addresses": [{"ip": node_ip}], "ports": [{"port": KUBELET_PORT, "name": "https"}]}]})
    attempts = {
        "host-api-url": {"url": f"{real_host_cluster.server}/", "caBundle": host_ca},
        "kubelet-url": {"url": f"https://{node_ip}:{KUBELET_PORT}/", "caBundle": host_ca},
        "endpoints": {"service": {"name": "host-api", "namespace": "default", "port": 443}, "caBundle": host_ca},
    }
    for name, client_config in attempts.items():
        admission.create_validating_webhook_configuration(webhook(name, client_config))
        core.create_namespace({"metadata": {"name": name, "labels": {"guarded": name}}})
        # Until its informer has the new Service, the API server answers "service not found".
        failed = eventually(lambda: (exc := refusal(core, name)) and "not found" not in exc.body and exc,
                            timeout=15, what=f"the {name} webhook in force")
        assert "failed calling webhook" in failed.body and "proxy error" in failed.body, (name, failed.body)

    # An aggregated API pointing at the host's API server, by an ExternalName Service.
    host, port = real_host_cluster.server.removeprefix("https://").rsplit(":", 1)
    core.create_namespaced_service("default", {"metadata": {"name": "evil"},
                                               "spec": {"type": "ExternalName", "externalName": host}})
    client.ApiregistrationV1Api(vc.tenant.api).create_api_service({
        "metadata": {"name": "v1.evil.example.test"},
        "spec": {"group": "evil.example.test", "version": "v1", "groupPriorityMinimum": 10, "versionPriority": 10,
                 "service": {"name": "evil", "namespace": "default", "port": int(port)}, "caBundle": host_ca}})
    status = eventually(lambda: [c for c in client.ApiregistrationV1Api(vc.tenant.api).read_api_service(
        "v1.evil.example.test").status.conditions or [] if c.type == "Available" and c.message], timeout=30,
        what="the APIService's availability")[0]
    assert status.status == "False" and "proxy error" in status.message
