"""The provisioning pipeline, run in-process against the real host cluster: part of the
runtime contract, so every test runs on each runtime (conftest.runtime_host)."""

import base64
import json

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from controlplane.images import reference
from localkube.testing import kubectl
from provisioning import manifests, pipeline
from provisioning.hostkube import HostKube
from tests.kube.helpers import eventually, pod
from vclusters.models import EventKind, Phase, StepStatus

pytestmark = [
    pytest.mark.django_db,
    # The cross-vcluster check skips TLS verification on purpose: it is about who is
    # authenticated, and the other server's CA is not the tenant's.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def _share(vcluster) -> dict:
    """What the control plane takes of the namespace quota, beside the tenant and CoreDNS."""
    return manifests.add_shares(manifests.CLUSTER_DNS_SHARE, pipeline.Context(vcluster).runtime.quota_share())


def _client_cert(kubeconfig_path):
    """The client certificate and key of a kubeconfig, as files for `requests`."""
    user = yaml.safe_load(kubeconfig_path.read_text())["users"][0]["user"]
    cert, key = kubeconfig_path.with_suffix(".crt"), kubeconfig_path.with_suffix(".key")
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return str(cert), str(key)


def test_it_provisions_a_vcluster_with_every_step_recorded(provisioned, runtime_host):
    vcluster = provisioned("steps")
    assert vcluster.phase == Phase.READY, vcluster.message
    steps = list(vcluster.steps.values_list("name", "status"))
    assert steps == [(s.name, StepStatus.SUCCEEDED) for s in pipeline.PROVISION]
    assert all(s.finished_at >= s.started_at for s in vcluster.steps.all())
    ns = vcluster.placement.host_namespace
    core = client.CoreV1Api(runtime_host.cluster.api_client())
    assert core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert core.read_namespaced_resource_quota("vcluster", ns).spec.hard["pods"] == str(50 + _share(vcluster)["pods"])
    assert vcluster.kubeconfig.startswith("apiVersion: v1")


def test_a_healthy_vcluster_needs_no_repair(provisioned):
    vcluster = provisioned("healthy")
    assert pipeline.repair(vcluster.pk) == []
    assert not vcluster.events.exists()


def test_tenant_is_cluster_admin_inside_and_nothing_outside(provisioned, runtime_host, tmp_path):
    vcluster = provisioned("tenant")
    path = tmp_path / "vc.kubeconfig"
    path.write_text(vcluster.kubeconfig)
    kubectl(path, "create", "namespace", "inside")
    kubectl(path, "create", "clusterrole", "reader", "--verb=get", "--resource=pods")
    kubectl(path, "create", "clusterrolebinding", "reader", "--clusterrole=reader", "--user=someone")

    host = client.CoreV1Api(runtime_host.cluster.api_client())
    assert "inside" not in {n.metadata.name for n in host.list_namespace().items}
    rbac = client.RbacAuthorizationV1Api(runtime_host.cluster.api_client())
    assert "reader" not in {r.metadata.name for r in rbac.list_cluster_role().items}

    # The tenant's credentials mean nothing to the host API server.
    response = requests.get(
        f"{runtime_host.cluster.server}/api/v1/namespaces", cert=_client_cert(path),
        verify=str(runtime_host.cluster.ca_cert_path), timeout=5,
    )
    assert response.status_code == 401


def test_two_teams_get_separate_namespaces_quotas_and_policies(provisioned, world, runtime_host, tmp_path):
    mine = provisioned("iso-a", cpu_millicores=1000)
    theirs = provisioned("iso-b", team=world.beta, cpu_millicores=2000)
    assert mine.placement.host_namespace != theirs.placement.host_namespace

    host = HostKube(runtime_host.cluster.admin_kubeconfig.read_text())
    # The kubernetes runtime's pod has a policy of its own.
    ours = {"vcluster-ingress", "vcluster-ingress-controllers", "vcluster-egress", "vcluster-api"} | (
        {"vcluster-control-plane"} if runtime_host.runtime == "kubernetes" else set())
    for vcluster, cpu in ((mine, 1), (theirs, 2)):
        ns = vcluster.placement.host_namespace
        quota = host.core.read_namespaced_resource_quota("vcluster", ns)
        beside = parse_quantity(f"{_share(vcluster)['cpu_millicores']}m")
        assert parse_quantity(quota.spec.hard["requests.cpu"]) == cpu + beside
        policies = client.NetworkingV1Api(host.api).list_namespaced_network_policy(ns).items
        assert {p.metadata.name for p in policies} == ours

    # One vcluster's kubeconfig is refused by the other's API server.
    path = tmp_path / "mine.kubeconfig"
    path.write_text(mine.kubeconfig)
    their_server = yaml.safe_load(theirs.kubeconfig)["clusters"][0]["cluster"]["server"]
    response = requests.get(f"{their_server}/api/v1/namespaces", cert=_client_cert(path), verify=False, timeout=5)
    assert response.status_code == 401


def test_host_namespace_rejects_over_quota_and_privileged_pods(provisioned, runtime_host):
    vcluster = provisioned("guarded", cpu_millicores=500)
    ns = vcluster.placement.host_namespace
    core = client.CoreV1Api(runtime_host.cluster.api_client())
    eventually(lambda: core.read_namespaced_resource_quota("vcluster", ns).status.hard, what="quota status")

    with pytest.raises(ApiException) as over:
        core.create_namespaced_pod(ns, pod("big", cpu="64"))
    assert over.value.status == 403 and "exceeded quota" in over.value.body

    with pytest.raises(ApiException) as privileged:
        core.create_namespaced_pod(ns, pod("root", privileged=True, cpu="100m"))
    assert privileged.value.status == 403 and "violates PodSecurity" in privileged.value.body


def test_a_permanent_error_fails_with_a_message_and_retry_resumes_there(provisioned, var_dir):
    vcluster = provisioned("later", kubernetes_version="v1.30.0")
    assert vcluster.phase == Phase.FAILED
    assert "Control plane" in vcluster.message and "v1.30.0 is not available" in vcluster.message
    steps = {s.name: s for s in vcluster.steps.all()}
    assert steps["Control plane"].status == StepStatus.FAILED
    assert steps["Host namespace"].status == StepStatus.SUCCEEDED
    first_done = steps["Host namespace"].finished_at

    type(vcluster).objects.filter(pk=vcluster.pk).update(kubernetes_version="v1.37.2", phase=Phase.PENDING)
    pipeline.provision(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.READY
    assert vcluster.steps.get(name="Host namespace").finished_at == first_done
    assert vcluster.steps.get(name="Control plane").status == StepStatus.SUCCEEDED


def test_repair_restores_what_was_changed_by_hand_and_brings_back_a_dead_control_plane(provisioned, runtime_host):
    vcluster = provisioned("drift")
    ns = vcluster.placement.host_namespace
    core = client.CoreV1Api(runtime_host.cluster.api_client())
    core.delete_namespaced_resource_quota("vcluster", ns)
    core.patch_namespace(ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    runtime_host.kill_control_plane(vcluster)

    changes = pipeline.repair(vcluster.pk)
    assert f"ResourceQuota {ns}/vcluster" in changes
    assert f"Namespace {ns}" in changes
    assert core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert runtime_host.serves(vcluster)  # repair waits for it (a process restarted, or a pod recreated)
    event = vcluster.events.get()
    assert event.kind == EventKind.REPAIR and "ResourceQuota" in event.message


def test_teardown_removes_everything_and_keeps_a_receipt(provisioned, runtime_host, tmp_path):
    vcluster = provisioned("gone")
    path = tmp_path / "vc.kubeconfig"
    path.write_text(vcluster.kubeconfig)
    kubectl(path, "create", "deployment", "web", f"--image={reference('busybox')}", "--replicas=2", "--",
            "sleep", "3600")
    ns = vcluster.placement.host_namespace
    core = client.CoreV1Api(runtime_host.cluster.api_client())
    eventually(lambda: len(core.list_namespaced_pod(ns, label_selector="app=web").items) == 2, what="synced host pods")

    def running_inside():
        pods = json.loads(kubectl(path, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        return len(pods) == 2 and all(
            p["status"].get("phase") == "Running" and p["spec"].get("nodeName")
            for p in pods
        )

    eventually(running_inside, what="the Deployment's pods Running, with their node, inside the vcluster")
    processes = runtime_host.processes(vcluster)

    type(vcluster).objects.filter(pk=vcluster.pk).update(phase=Phase.DELETING)
    pipeline.teardown(vcluster.pk)
    vcluster.refresh_from_db()

    assert vcluster.phase == Phase.DELETED and vcluster.kubeconfig == ""
    host = HostKube(runtime_host.cluster.admin_kubeconfig.read_text())
    assert not host.exists("v1", "Namespace", ns)
    assert host.find_labelled(f"{manifests.VCLUSTER_LABEL}={vcluster.pk}") == []
    assert runtime_host.leftovers(vcluster, processes) == []
    receipt = vcluster.placement.receipt
    assert [s["step"] for s in receipt["steps"]] == [s.name for s in pipeline.TEARDOWN]
    done = {s["step"]: s["done"] for s in receipt["steps"]}
    assert runtime_host.stopped_word in done["Stop syncer and control plane"]
    assert done["Host namespace gone"] == f"Namespace {ns} no longer on the host"


def test_no_enabled_host_fails_the_vcluster_with_what_to_do(provisioned, host):
    type(host).objects.filter(pk=host.pk).update(enabled=False)
    vcluster = provisioned("nowhere")
    assert vcluster.phase == Phase.FAILED
    assert "No enabled host cluster is open to team" in vcluster.message
    assert vcluster.steps.get(name="Host namespace").status == StepStatus.FAILED


def test_repair_reissues_a_kubeconfig_that_names_a_stale_server(provisioned):
    vcluster = provisioned("moved")
    server = yaml.safe_load(vcluster.kubeconfig)["clusters"][0]["cluster"]["server"]
    stale = vcluster.kubeconfig.replace(server, "https://127.0.0.1:1")
    type(vcluster).objects.filter(pk=vcluster.pk).update(kubeconfig=stale)

    assert "admin kubeconfig issued" in pipeline.repair(vcluster.pk)
    vcluster.refresh_from_db()
    assert yaml.safe_load(vcluster.kubeconfig)["clusters"][0]["cluster"]["server"] == server
