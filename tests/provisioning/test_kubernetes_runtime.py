"""The `kubernetes` runtime on the host cluster with a real node: each vcluster's
control plane and syncer are one pod of a StatefulSet in its host namespace, with its
data on a volume from the host's provisioner (local-path-provisioner), reached by
tenants at the node's address and the Service's node port.

What this does not prove: a multi-node host (the pod moving to another node with its
volume), a cloud load balancer or an ingress controller in front of the API server
(those access modes are unit tested in test_controlplane.py only).
"""

import json
import os
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from accounts.audit import SYSTEM
from localkube.testing import kubectl
from provisioning import installation, manifests, pipeline
from provisioning.hostclusters import services
from provisioning.hostkube import HostKube
from provisioning.models import Placement
from provisioning.runtimes import kubeobjects as cp
from syncer import names
from tests.kube.helpers import SMALL, busybox_pod, deployment, eventually
from tests.portal.conftest import make_vcluster
from tests.provisioning.conftest import processes_under
from vclusters.models import Phase, VCluster

pytestmark = pytest.mark.realnode


def vcluster_kube(vcluster) -> HostKube:
    return HostKube(VCluster.objects.get(pk=vcluster.pk).kubeconfig)


def host_kube(real_host_cluster) -> HostKube:
    return HostKube(real_host_cluster.admin_kubeconfig.read_text())


def control_plane_pod(real_host_cluster, vcluster):
    ns = Placement.objects.get(vcluster=vcluster).host_namespace
    return host_kube(real_host_cluster).core.read_namespaced_pod(cp.POD, ns)


def kubectl_with(kubeconfig: str, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "vcluster.kubeconfig"
    path.write_text(kubeconfig)
    os.chmod(path, 0o600)
    return kubectl(path, *args).stdout


def wait_replaced(real_host_cluster, vcluster, old_uid: str, timeout=120):
    """A new control-plane pod is Ready. Until then the old pod's containers, deleted
    without a grace period, may still answer for a moment: waiting only for an answer
    once let the test talk to a server that was about to go."""
    def replaced():
        pod = control_plane_pod(real_host_cluster, vcluster)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod.metadata.uid != old_uid and ready
    eventually(replaced, timeout=timeout, interval=0.5, what="a new control-plane pod, ready")
    wait_ready(vcluster)


def wait_ready(vcluster, timeout=120):
    """The vcluster's API answers again (after its pod was replaced)."""
    def answers():
        try:
            return vcluster_kube(vcluster).version()
        except Exception:  # noqa: BLE001  (not yet: connection refused, TLS reset)
            return None
    return eventually(answers, timeout=timeout, interval=0.5, what="the vcluster's API server answering")


@pytest.mark.django_db(transaction=True)
def test_control_plane_and_syncer_are_a_pod_on_the_host(provisioned_as_pods, real_host_cluster, var_dir, tmp_path):
    vcluster = provisioned_as_pods("pods")
    assert vcluster.phase == Phase.READY, vcluster.message
    placement = Placement.objects.get(vcluster=vcluster)
    assert placement.runtime == "kubernetes"

    pod = control_plane_pod(real_host_cluster, vcluster)
    assert pod.spec.node_name == "realnode-0"
    statuses = [*pod.status.init_container_statuses, *pod.status.container_statuses]
    assert {c.name for c in statuses if c.ready} == {
        "kine", "kube-apiserver", "kube-controller-manager", "syncer"}
    assert not (var_dir / "vclusters" / str(vcluster.pk)).exists(), "no state on the worker"
    assert not processes_under(var_dir), "no process of the vcluster on the worker"

    server = yaml.safe_load(vcluster.kubeconfig)["clusters"][0]["cluster"]["server"]
    assert server.startswith(f"https://{real_host_cluster.real_node().link.node_ip}:")
    assert "kube-system" in kubectl_with(vcluster.kubeconfig, tmp_path, "get", "namespaces", "-o", "name")

    # A tenant Deployment runs; it reaches its own API server as kubernetes.default.
    api = vcluster_kube(vcluster)
    api.core.create_namespace({"metadata": {"name": "team-ns"}})
    client.AppsV1Api(api.api).create_namespaced_deployment("team-ns", deployment(
        "web", busybox_pod("web", "echo started; sleep 3600", restart="Always", resources=SMALL).spec, replicas=2))
    eventually(lambda: len([p for p in api.core.list_namespaced_pod("team-ns").items
                            if p.status.phase == "Running"]) == 2,
               timeout=120, interval=1, what="both tenant pods Running")
    # logs and exec: the API server calls the syncer's kubelet API inside the pod.
    assert "started" in kubectl_with(vcluster.kubeconfig, tmp_path, "-n", "team-ns", "logs", "deploy/web")
    assert kubectl_with(vcluster.kubeconfig, tmp_path, "-n", "team-ns", "exec", "deploy/web", "--",
                        "echo", "inside").strip() == "inside"
    # A Service has the host's ClusterIP from its creation: the API server calls the
    # syncer's webhook with the pod's credentials (syncer.admission).
    created = api.core.create_namespaced_service("team-ns", {
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    host_copies = host_kube(real_host_cluster).core.list_namespaced_service(pod.metadata.namespace).items
    assert created.spec.cluster_ip in {s.spec.cluster_ip for s in host_copies
                                       if (s.metadata.annotations or {}).get(names.ANN_NAME) == "web"}
    # A pod the tenant policy refuses is refused at creation by the syncer's pod webhook.
    hostpath = {"metadata": {"name": "hostpath"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "volumes": [{"name": "v", "hostPath": {"path": "/"}}]}}
    with pytest.raises(client.ApiException) as refused:
        api.core.create_namespaced_pod("team-ns", hostpath, dry_run="All")
    assert refused.value.status == 403 and "hostPath volumes are not allowed" in refused.value.body


@pytest.mark.django_db(transaction=True)
def test_a_killed_pod_or_statefulset_comes_back_with_its_data(provisioned_as_pods, real_host_cluster, tmp_path):
    vcluster = provisioned_as_pods("survivor")
    api = vcluster_kube(vcluster)
    api.core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}, "data": {"k": "v"}})
    before = control_plane_pod(real_host_cluster, vcluster)

    ns = Placement.objects.get(vcluster=vcluster).host_namespace
    host_kube(real_host_cluster).core.delete_namespaced_pod(cp.POD, ns, grace_period_seconds=0)
    wait_replaced(real_host_cluster, vcluster, before.metadata.uid)

    assert vcluster_kube(vcluster).core.read_namespaced_config_map("kept", "default").data == {"k": "v"}
    assert "configmap/kept" in kubectl_with(vcluster.kubeconfig, tmp_path, "get", "configmaps", "-o", "name")

    # A deleted StatefulSet takes its pod along but leaves the claim; repair brings both back.
    before = control_plane_pod(real_host_cluster, vcluster)
    client.AppsV1Api(host_kube(real_host_cluster).api).delete_namespaced_stateful_set(
        cp.STATEFULSET, ns, propagation_policy="Foreground")
    eventually(lambda: not host_kube(real_host_cluster).exists("apps/v1", "StatefulSet", cp.STATEFULSET, ns)
               and not host_kube(real_host_cluster).exists("v1", "Pod", cp.POD, ns),
               timeout=60, interval=0.5, what="the StatefulSet and its pod gone")
    assert f"StatefulSet {ns}/{cp.STATEFULSET}" in pipeline.repair(vcluster.pk)
    wait_replaced(real_host_cluster, vcluster, before.metadata.uid)
    assert vcluster_kube(vcluster).core.read_namespaced_config_map("kept", "default").data == {"k": "v"}


@pytest.mark.django_db(transaction=True)
def test_repair_restores_a_deleted_service_and_secret_as_they_were(provisioned_as_pods, real_host_cluster, tmp_path):
    vcluster = provisioned_as_pods("repaired")
    ns = Placement.objects.get(vcluster=vcluster).host_namespace
    core = host_kube(real_host_cluster).core
    service = core.read_namespaced_service(cp.SERVICE, ns)
    keys = core.read_namespaced_secret(cp.PKI_SECRET, ns).data

    core.delete_namespaced_service(cp.SERVICE, ns)
    core.delete_namespaced_secret(cp.PKI_SECRET, ns)
    changes = pipeline.repair(vcluster.pk)

    assert f"Service {ns}/{cp.SERVICE}" in changes and f"Secret {ns}/{cp.PKI_SECRET}" in changes
    again = core.read_namespaced_service(cp.SERVICE, ns)
    assert (again.spec.cluster_ip, again.spec.ports[0].node_port) == (
        service.spec.cluster_ip, service.spec.ports[0].node_port)
    assert core.read_namespaced_secret(cp.PKI_SECRET, ns).data == keys, "the same keys, not new ones"
    vcluster.refresh_from_db()
    assert "kube-system" in kubectl_with(vcluster.kubeconfig, tmp_path, "get", "namespaces", "-o", "name")
    assert pipeline.repair(vcluster.pk) == [], "a second repair finds nothing to do"


@pytest.mark.django_db(transaction=True)
def test_teardown_leaves_nothing_and_says_what_it_removed(provisioned_as_pods, real_host_cluster):
    vcluster = provisioned_as_pods("gone")
    ns = Placement.objects.get(vcluster=vcluster).host_namespace
    kube = host_kube(real_host_cluster)
    claim = kube.core.read_namespaced_persistent_volume_claim(cp.PVC, ns)
    volume = kube.core.read_persistent_volume(claim.spec.volume_name)
    directory = Path((volume.spec.local or volume.spec.host_path).path)
    assert directory.is_dir(), "the volume's data is on the node"

    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.DELETING)
    pipeline.teardown(vcluster.pk)

    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.DELETED
    receipt = json.dumps(Placement.objects.get(vcluster=vcluster).receipt)
    for removed in (f"StatefulSet {ns}/{cp.STATEFULSET}", f"PersistentVolumeClaim {ns}/{cp.PVC}",
                    f"PersistentVolume {volume.metadata.name} and its volume", f"Secret {ns}/{cp.PKI_SECRET}",
                    f"Service {ns}/{cp.SERVICE}"):
        assert removed in receipt
    assert kube.find_labelled(manifests.selector(vcluster.pk, installation.current().name)) == []
    with pytest.raises(client.ApiException) as gone:
        kube.core.read_persistent_volume(volume.metadata.name)
    assert gone.value.status == 404
    assert not directory.exists(), "the provisioner removed the volume's directory"
    assert Placement.objects.get(vcluster=vcluster).control_plane_state == ""


@pytest.mark.django_db(transaction=True)
def test_both_runtimes_side_by_side(world, host_cluster, real_host_cluster, var_dir):
    """One portal, two host clusters: one runs control planes as processes on the
    worker, the other as pods; each team is placed on its own."""
    local = services.register_host_cluster(SYSTEM, name="local-host", runtime="local",
                                           kubeconfig=host_cluster.admin_kubeconfig.read_text(), teams=["beta"])
    pods = services.register_host_cluster(
        SYSTEM, name="pod-host", runtime="kubernetes", access="nodeport",
        access_address=real_host_cluster.real_node().link.node_ip,
        kubeconfig=real_host_cluster.admin_kubeconfig.read_text(), teams=["alpha"])
    created = []
    try:
        for team, name in ((world.alpha, "as-pods"), (world.beta, "as-processes")):
            vcluster = make_vcluster(team, name)
            created.append(vcluster.pk)
            pipeline.provision(vcluster.pk)
        as_pods, as_processes = (VCluster.objects.get(pk=pk) for pk in created)
        assert (as_pods.phase, as_processes.phase) == (Phase.READY, Phase.READY)
        assert as_pods.placement.host_cluster == pods and as_pods.placement.runtime == "kubernetes"
        assert as_processes.placement.host_cluster == local and as_processes.placement.runtime == "local"
        assert control_plane_pod(real_host_cluster, as_pods).status.phase == "Running"
        assert processes_under(var_dir / "vclusters" / str(as_processes.pk))
        assert not (var_dir / "vclusters" / str(as_pods.pk)).exists()
    finally:
        for pk in created:
            VCluster.objects.filter(pk=pk).update(phase=Phase.DELETING)
            pipeline.teardown(pk)
