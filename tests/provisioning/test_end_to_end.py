"""A vcluster's whole life through the REST API, a real Celery worker (with beat),
Redis, PostgreSQL, the host cluster and the kubectl binary, which reaches the vcluster
through the gateway with the personal kubeconfig the API hands out."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from accounts.audit import Actor
from accounts.services import create_token
from localkube.ports import allocate
from localkube.processes import process_alive
from localkube.testing import kubectl
from provisioning import installation, manifests
from provisioning.hostkube import HostKube
from tests.gateway.conftest import gateway_server  # noqa: F401  (fixture)
from tests.kube.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.demo.example}
spec:
  group: demo.example
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
WIDGET = "apiVersion: demo.example/v1\nkind: Widget\nmetadata: {name: w1, namespace: team-ns}\nsize: 3\n"

def api_as(user) -> APIClient:
    _, token = create_token(Actor(user), name="e2e")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client

def wait_phase(api, vcluster_id, phase, timeout=120):
    def reached():
        body = api.get(f"/api/v1/vclusters/{vcluster_id}/").json()
        assert body["phase"] != "Failed", body
        return body if body["phase"] == phase else None

    return eventually(reached, timeout=timeout, interval=0.5, what=f"phase {phase}")

def test_create_use_and_delete_a_vcluster_through_the_api(world, host, celery_worker, host_cluster, var_dir, tmp_path,
                                                         gateway_server, settings):  # noqa: F811
    settings.VCPORTAL_GATEWAY_URL = gateway_server.url  # the API client below is in-process
    host_kube = HostKube(host_cluster.admin_kubeconfig.read_text())
    namespaces_before = {n.metadata.name for n in host_kube.core.list_namespace().items}
    worker_metrics = f"127.0.0.1:{allocate(['worker'])['worker']}"
    celery_worker.start(VCPORTAL_WORKER_METRICS_ADDRESS=worker_metrics)
    api = api_as(world.teammate)

    created = api.post("/api/v1/vclusters/", {"team": "alpha", "name": "e2e"}, format="json")
    assert created.status_code == 201, created.content
    vcluster_id = created.json()["id"]
    wait_phase(api, vcluster_id, "Ready")

    # The worker's /metrics (docs/metrics.md): this create, to Ready, and each of its steps.
    measured = {(m.name, m.labels.get("step"), m.labels.get("outcome")): m.value for family in
                text_string_to_metric_families(requests.get(f"http://{worker_metrics}/metrics", timeout=5).text)
                for m in family.samples}
    assert measured[("vcportal_create_to_ready_seconds_count", None, None)] == 1
    assert measured[("vcportal_step_duration_seconds_count", "Control plane", "succeeded")] == 1

    kubeconfig = api.get(f"/api/v1/vclusters/{vcluster_id}/kubeconfig/")
    assert kubeconfig.status_code == 200
    path = tmp_path / "e2e.kubeconfig"
    path.write_bytes(kubeconfig.content)
    kubectl(path, "create", "namespace", "team-ns")
    kubectl(path, "apply", "-f", "-", input=CRD)
    kubectl(path, "wait", "--for=condition=Established", "crd/widgets.demo.example", "--timeout=60s")
    eventually(lambda: kubectl(path, "apply", "-f", "-", input=WIDGET, check=False).returncode == 0, what="widget")
    kubectl(path, "create", "clusterrole", "widget-reader", "--verb=get,list", "--resource=widgets")
    kubectl(path, "create", "clusterrolebinding", "widget-reader", "--clusterrole=widget-reader", "--user=dev")
    assert "w1" in kubectl(path, "get", "widgets", "-n", "team-ns", "-o", "name").stdout

    # The host holds only the vcluster's namespace: none of what the tenant made.
    host_ns = f"vc-{installation.current().token}-{vcluster_id}-alpha-e2e"
    assert {n.metadata.name for n in host_kube.core.list_namespace().items} - namespaces_before == {host_ns}
    assert not host_kube.exists("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.demo.example")
    assert not host_kube.exists("rbac.authorization.k8s.io/v1", "ClusterRole", "widget-reader")
    assert not host_kube.exists("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "widget-reader")

    state_dir = var_dir / "vclusters" / str(vcluster_id)
    pids = [int(p.read_text().split()[0]) for p in state_dir.rglob("*.pid")]
    assert len(pids) == 4  # kine, kube-apiserver, kube-controller-manager, syncer

    assert api.delete(f"/api/v1/vclusters/{vcluster_id}/").status_code == 202
    body = wait_phase(api, vcluster_id, "Deleted")
    assert body["receipt"]["steps"][-1]["step"] == "Verify nothing remains"

    assert {n.metadata.name for n in host_kube.core.list_namespace().items} == namespaces_before
    assert host_kube.find_labelled(f"{manifests.VCLUSTER_LABEL}={vcluster_id}") == []
    assert not any(process_alive(pid) for pid in pids)
    assert not state_dir.exists()
    assert api.get(f"/api/v1/vclusters/{vcluster_id}/kubeconfig/").status_code == 409
