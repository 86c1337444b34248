"""The syncer as provisioning runs it: ready before the step is done, without the
portal's secrets, restarted when the host's tenant policy changes, serving the
vcluster's kubelet API on a host with a real node."""

import dataclasses
import json
import stat

import pytest
from kubernetes import client

from accounts.audit import Actor
from controlplane.images import reference
from localkube import LocalCluster
from localkube.testing import kubectl
from localkube.processes import ProcessDir
from provisioning import pipeline
from provisioning.hostclusters import services
from provisioning.models import Placement
from provisioning.runtimes import LocalProcessRuntime, VClusterRef
from provisioning.runtimes.base import RuntimeFailure, hosts_image
from syncer.config import load, vcluster_config_path
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from syncer.kinds.ingresses import LABEL_HOLDER as CLAIM_HOLDER
from syncer.policy import TenantPolicy
from vclusters.lifecycle import Phase
from vclusters.models import VCluster
from tests.kube.helpers import eventually

pytestmark = pytest.mark.django_db

PORTAL_SECRETS = ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL")


def ref_of(vcluster) -> VClusterRef:
    return VClusterRef(vcluster.pk, vcluster.name, vcluster.placement.host_namespace, vcluster.kubernetes_version)


def syncer_pid(var_dir, vcluster) -> int:
    base = var_dir / "vclusters" / str(vcluster.pk)
    return ProcessDir(base, base / "run", base / "logs").pid("syncer")


def test_the_syncer_step_ends_with_a_ready_syncer_that_carries_no_portal_secrets(provisioned, var_dir):
    vcluster = provisioned("quiet")
    assert LocalProcessRuntime().syncer_running(ref_of(vcluster)), "ready: /readyz answers 200"

    pid = syncer_pid(var_dir, vcluster)
    environ = dict(entry.split("=", 1) for entry in
                   open(f"/proc/{pid}/environ").read().split("\0") if "=" in entry)
    assert not [name for name in PORTAL_SECRETS if name in environ], sorted(environ)
    argv = open(f"/proc/{pid}/cmdline").read().split("\0")
    assert argv[1:3] == ["-m", "syncer"] and "manage.py" not in " ".join(argv), "no Django in the process"
    assert load(vcluster_config_path(vcluster.pk)).hosts_image == reference("busybox"), "VCPORTAL_HOSTS_IMAGE's default"


def test_the_hosts_image_setting_names_the_image_or_says_what_is_missing(settings, monkeypatch):
    settings.VCPORTAL_HOSTS_IMAGE = "registry.example/busybox:1.37"
    assert hosts_image() == "registry.example/busybox:1.37"
    settings.VCPORTAL_HOSTS_IMAGE = ""
    monkeypatch.setenv("VCPORTAL_IMAGES_CACHE", "/nonexistent")
    with pytest.raises(RuntimeFailure, match="make images.*VCPORTAL_HOSTS_IMAGE"):
        hosts_image()


def test_a_host_clusters_changed_tenant_policy_reaches_its_running_syncer(provisioned, host, world, var_dir):
    vcluster = provisioned("policy")
    runtime, ref = LocalProcessRuntime(), ref_of(vcluster)
    before = syncer_pid(var_dir, vcluster)
    assert load(vcluster_config_path(vcluster.pk)).policy == TenantPolicy(), "the empty policy by default"
    assert pipeline.repair(vcluster.pk) == [], "unchanged: the syncer is left alone"

    wider = {"csi_drivers": ["secrets-store.csi.k8s.io"], "external_name_services": True}
    services.update_host_cluster(Actor(world.staff), host, tenant_policy=wider)
    changes = pipeline.repair(vcluster.pk)

    assert changes == ["syncer started"]
    assert load(vcluster_config_path(vcluster.pk)).policy == TenantPolicy.from_dict(wider)
    assert syncer_pid(var_dir, vcluster) not in (None, before)
    assert runtime.syncer_running(ref), "the Syncer step waits until the restarted syncer is ready"
    assert pipeline.repair(vcluster.pk) == []


def test_kubectl_logs_and_exec_work_with_the_admin_kubeconfig_on_a_real_node(provisioned_on_real_node, tmp_path):
    vcluster = provisioned_on_real_node("running")
    config = load(vcluster_config_path(vcluster.pk))
    assert config.kubelet_address.startswith("127.0.0.1:")
    assert config.kubelet_key.parent == vcluster_config_path(vcluster.pk).parent
    assert stat.S_IMODE(config.kubelet_key.stat().st_mode) == 0o600
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(vcluster.kubeconfig)

    kubectl(kubeconfig, "run", "hello", f"--image={reference('busybox')}", "--restart=Never", "--command", "--",
            "sh", "-c", "echo hello-from-a-provisioned-vcluster; sleep 3600")

    def phase() -> str:
        pod = json.loads(kubectl(kubeconfig, "get", "pod", "hello", "-o", "json").stdout)
        return pod["status"].get("phase", "")

    eventually(lambda: phase() == "Running", timeout=120, what="the pod to run on the real node")
    eventually(lambda: "hello-from-a-provisioned-vcluster" in kubectl(kubeconfig, "logs", "hello", check=False).stdout,
               what="the line in kubectl logs")
    assert kubectl(kubeconfig, "exec", "hello", "--", "id").stdout.startswith("uid=0(root)")


def test_a_team_gets_its_own_host_names_and_teardown_releases_its_claims(provisioned, host, host_cluster, world,
                                                                          tmp_path):
    services.update_host_cluster(Actor(world.staff), host, tenant_policy={"ingress_hosts": ["*.{team}.apps.test"]})
    vcluster = provisioned("web")
    domain = f"{world.alpha.slug}.apps.test"
    assert load(vcluster_config_path(vcluster.pk)).policy.ingress_hosts == (f"*.{domain}",)
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(vcluster.kubeconfig)
    kubectl(kubeconfig, "create", "ingress", "shop", f"--rule=shop.{domain}/=web:80")
    namespace = vcluster.placement.host_namespace
    api = client.CoordinationV1Api(host_cluster.api_client())
    lease = eventually(lambda: api.read_namespaced_lease(f"shop.{domain}", CLAIMS_NAMESPACE), what="the claim")
    assert lease.spec.holder_identity == namespace

    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.DELETING)
    pipeline.teardown(vcluster.pk)
    assert api.list_namespaced_lease(CLAIMS_NAMESPACE, label_selector=f"{CLAIM_HOLDER}={namespace}").items == []
    receipt = Placement.objects.get(vcluster=vcluster).receipt
    assert f"1 Ingress host-name claims: shop.{domain}" in json.dumps(receipt)


def test_a_vcluster_made_before_the_egress_proxy_gets_it_at_its_next_repair(provisioned, var_dir):
    """A local vcluster's API server reaches the cluster only through its syncer (syncer.egress);
    one whose control plane and syncer ran without that (an older version) is brought to it."""
    vcluster = provisioned("older")
    cluster = LocalCluster(var_dir / "vclusters" / str(vcluster.pk) / "controlplane")
    assert cluster.egress_socket.is_socket()
    config_path = vcluster_config_path(vcluster.pk)
    older = json.loads(cluster.config_path.read_text()) | {"egress": False}
    cluster.config_path.write_text(json.dumps(older))
    cluster.start()  # its API server again without the egress selector
    config_path.write_text(dataclasses.replace(load(config_path), egress_socket=None).dump())
    assert not any(arg.startswith("--egress-selector") for arg in cluster.processes.argv("kube-apiserver"))

    assert pipeline.repair(vcluster.pk) == ["control plane started", "syncer started"]
    assert f"--egress-selector-config-file={cluster.state_dir / 'egress-selector.yaml'}" in cluster.processes.argv(
        "kube-apiserver")
    assert load(config_path).egress_socket == cluster.egress_socket and cluster.egress_socket.is_socket()
    assert pipeline.repair(vcluster.pk) == []
