"""What a tenant pod may ask of the host (syncer.kinds.pods.safety), rule by rule."""

from __future__ import annotations

import dataclasses

import pytest

from syncer.kinds.pods import translate as pods
from syncer.policy import PolicyError, TenantPolicy
from syncer.translate import NotOffered, Refused, Target

from .test_translate import TARGET, virtual_pod

PERMISSIVE = Target("vc", "host-ns", policy=TenantPolicy.from_dict({
    "csi_drivers": ["secrets-store.csi.k8s.io"],
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "tenants", "effect": "NoSchedule"}],
    "node_label_keys": ["topology.kubernetes.io/zone"],
    "runtime_classes": ["gvisor"],
}))


def host_spec(target=TARGET, **spec) -> dict:
    return pods.host_pod(virtual_pod(**spec), target, "tok")["spec"]


@pytest.mark.parametrize("volume", [
    {"hostPath": {"path": "/"}}, {"nfs": {"server": "s", "path": "/"}}, {"iscsi": {"targetPortal": "p"}},
    {"rbd": {"monitors": ["m"]}}, {"cephfs": {"monitors": ["m"]}}, {"flexVolume": {"driver": "d"}},
    {"awsElasticBlockStore": {"volumeID": "v"}}, {"gcePersistentDisk": {"pdName": "d"}},
    {"azureFile": {"secretName": "s", "shareName": "x"}}, {"glusterfs": {"endpoints": "e", "path": "p"}},
    {"gitRepo": {"repository": "r"}},
])
def test_volume_types_a_tenant_does_not_need_are_refused(volume):
    with pytest.raises(Refused, match="volumes are not allowed"):
        host_spec(PERMISSIVE, volumes=[{"name": "v", **volume}])


def test_the_volumes_a_tenant_needs_pass():
    volumes = [{"name": "a", "configMap": {"name": "c"}}, {"name": "b", "secret": {"secretName": "s"}},
               {"name": "c", "emptyDir": {"medium": "Memory"}}, {"name": "d", "downwardAPI": {"items": []}},
               {"name": "e", "persistentVolumeClaim": {"claimName": "data"}},
               # An image the kubelet pulls as it would a container's: nothing a container could not have.
               {"name": "f", "image": {"reference": "registry.example/data:1", "pullPolicy": "IfNotPresent"}}]
    spec = host_spec(volumes=volumes)
    assert [v["name"] for v in spec["volumes"]] == ["a", "b", "c", "d", "e", "f"]
    assert spec["volumes"][5] == volumes[5]


def test_projected_sources_the_syncer_does_not_know_are_refused():
    # A source a later Kubernetes may add, which the host's kubelet would fill from the host.
    volume = {"name": "p", "projected": {"sources": [{"nodeIdentity": {"path": "node.pem"}}]}}
    with pytest.raises(Refused, match="projected nodeIdentity"):
        host_spec(volumes=[volume])


def test_inline_csi_needs_a_listed_driver_and_its_secret_is_the_tenants_copy():
    volume = {"name": "v", "csi": {"driver": "secrets-store.csi.k8s.io", "nodePublishSecretRef": {"name": "creds"}}}
    with pytest.raises(NotOffered, match="CSI driver"):  # a driver this host lacks: Pending, as on Kubernetes
        host_spec(volumes=[volume])
    with pytest.raises(Refused, match="hostPath volumes are not allowed") as refused:  # outright, whatever the order
        host_spec(volumes=[volume, {"name": "h", "hostPath": {"path": "/"}}])
    assert not isinstance(refused.value, NotOffered)
    spec = host_spec(PERMISSIVE, volumes=[volume])
    assert spec["volumes"][0]["csi"]["nodePublishSecretRef"] == {"name": "creds-x-shop-x-vc"}
    assert pods.pod_refs(virtual_pod(volumes=[volume])).secrets == {"creds": True}, "synced and waited for"


def test_an_ephemeral_claim_template_is_sanitised_like_a_claim():
    template = {"metadata": {"labels": {"app": "db", "vcportal.io/managed-by": "other"},
                             "annotations": {"volume.kubernetes.io/selected-node": "control-plane"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                         "storageClassName": "fast", "volumeName": "someone-elses-pv",
                         "selector": {"matchLabels": {"a": "b"}},
                         "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"},
                         "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "x", "namespace": "other"}}}
    spec = host_spec(dataclasses.replace(TARGET, default_storage_class="fast"),
                     volumes=[{"name": "data", "ephemeral": {"volumeClaimTemplate": template}}])
    assert spec["volumes"][0]["ephemeral"] == {"volumeClaimTemplate": {
        "metadata": {"labels": {"app": "db", "vcportal.io/managed-by": "vc", "vcportal.io/virtual-namespace": "shop"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "fast", "dataSource": {"kind": "PersistentVolumeClaim",
                                                            "name": "seed-x-shop-x-vc"}}}}


@pytest.mark.parametrize("storage_class, policy, default, allowed", [
    (None, [], None, True),  # the host's default, whatever it is
    ("standard", [], "standard", True),
    ("fast", ["fast"], "standard", True),
    ("fast", [], "standard", False),
    ("tenants-own", ["fast"], "standard", False),
    ("", [], "standard", False),  # no class: the host's hand-made volumes
])
def test_an_ephemeral_claim_may_name_the_hosts_default_class_or_one_the_policy_lists(storage_class, policy, default,
                                                                                   allowed):
    target = Target("vc", "host-ns", policy=TenantPolicy.from_dict({"storage_classes": policy}),
                    default_storage_class=default)
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    volumes = [{"name": "data", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}]
    if allowed:
        assert host_spec(target, volumes=volumes)["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"] == spec
    else:
        with pytest.raises(Refused, match=f"storage class {storage_class!r} is not offered"):
            host_spec(target, volumes=volumes)


OFFERED = Target("vc", "host-ns", priority_classes=(("tenant-low", 100), ("tenant-high", 1000)))


@pytest.mark.parametrize("spec, expected", [
    ({"priorityClassName": "tenant-low", "priority": 100}, "tenant-low"),
    ({"priorityClassName": "mine", "priority": 500}, "tenant-low"),  # a class of the tenant's own
    ({"priorityClassName": "system-node-critical", "priority": 2000001000}, "tenant-high"),
    ({"priorityClassName": "tiny", "priority": 1}, None),  # below every offer: the host's default
    ({"priorityClassName": None, "priority": None}, None),
])
def test_a_pods_host_priority_class_is_one_the_host_offers_never_above_its_own(spec, expected):
    host = host_spec(OFFERED, **spec)
    assert host.get("priorityClassName") == expected
    assert "priority" not in host and "preemptionPolicy" not in host, "the host's admission sets them"
    assert "priorityClassName" not in host_spec(**spec), "nothing offered: the host's default"


def test_a_policy_cannot_offer_the_hosts_system_priority_classes():
    with pytest.raises(PolicyError, match="system classes: system-cluster-critical"):
        TenantPolicy.from_dict({"priority_classes": ["tenant", "system-cluster-critical"]})


def test_tolerations_not_in_the_policy_are_stripped():
    tolerations = [{"operator": "Exists"},
                   {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300},
                   {"key": "dedicated", "value": "tenants", "effect": "NoSchedule"}]
    assert "tolerations" not in host_spec(tolerations=tolerations)
    assert host_spec(PERMISSIVE, tolerations=tolerations)["tolerations"] == [tolerations[2]]


def test_node_selectors_and_required_node_affinity_on_unlisted_keys_are_refused():
    # NotOffered: Kubernetes accepts a pod it cannot place, so the pod webhook does too.
    with pytest.raises(NotOffered, match="nodeSelector on host node labels node-role.kubernetes.io/control-plane"):
        host_spec(PERMISSIVE, nodeSelector={"node-role.kubernetes.io/control-plane": ""})
    assert host_spec(PERMISSIVE, nodeSelector={"topology.kubernetes.io/zone": "a"})["nodeSelector"] == \
        {"topology.kubernetes.io/zone": "a"}
    required = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["control-plane-1"]}]}]}}}
    with pytest.raises(NotOffered, match="node affinity on host node labels metadata.name"):
        host_spec(PERMISSIVE, affinity=required)


def test_a_pod_may_be_pinned_by_name_only_to_nodes_the_vcluster_shows_as_a_daemonsets_pods_are():
    def pinned(*nodes: str, operator: str = "In") -> dict:
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": operator, "values": list(nodes)}]}]}}}
    showing = dataclasses.replace(TARGET, nodes=frozenset({"worker-1", "worker-2"}))
    assert host_spec(showing, affinity=pinned("worker-1"))["affinity"] == pinned("worker-1"), "kept as it is"
    for escape in (pinned("control-plane-1"), pinned("worker-1", "control-plane-1"),
                   pinned("worker-1", operator="NotIn")):  # NotIn picks every other node
        with pytest.raises(Refused, match="node affinity on host node labels metadata.name"):
            host_spec(showing, affinity=escape)


def test_preferred_node_affinity_on_unlisted_keys_is_stripped():
    preferred = [{"weight": 1, "preference": {"matchExpressions": [
                     {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}},
                 {"weight": 2, "preference": {"matchExpressions": [
                     {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}}]
    spec = host_spec(PERMISSIVE, affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                                                            preferred}})
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [preferred[1]]


def test_a_runtime_class_must_be_listed():
    with pytest.raises(Refused, match="runtimeClassName 'kata'"):
        host_spec(PERMISSIVE, runtimeClassName="kata")
    assert host_spec(PERMISSIVE, runtimeClassName="gvisor")["runtimeClassName"] == "gvisor"


def test_a_policy_is_normalised_and_refuses_what_it_does_not_know():
    policy = TenantPolicy.from_dict({"csi_drivers": ["b", "a", "a"], "tolerations": [{"key": "k", "effect": ""}]})
    assert policy.csi_drivers == ("a", "b")
    assert policy.allows_toleration({"key": "k", "operator": "Equal", "tolerationSeconds": 60})
    assert TenantPolicy.from_dict(policy.to_dict()) == policy
    for bad in ({"csi_drivers": "a"}, {"tolerations": [{"key": "k", "seconds": 1}]},
                {"external_name_services": "yes"}, {"hostPath": True}):
        with pytest.raises(PolicyError):
            TenantPolicy.from_dict(bad)


def test_the_pod_webhook_answers_with_the_controllers_reason_once_the_informers_have_synced():
    """The review's shape around PodController.refusal (tested end to end in
    test_tenant_policy.py): until the informers have synced, which say what nodes the
    vcluster shows, every pod is allowed and the controller decides as it syncs."""
    from types import SimpleNamespace

    from syncer import admission

    class Pods:
        def refusal(self, pod):
            return "volume 'v': hostPath volumes are not allowed" if pod["spec"].get("volumes") else None

    ctx = SimpleNamespace(controllers={"Pod": Pods()})

    def answer(spec: dict, synced: bool = True, kind: str = "Pod") -> dict:
        request = {"uid": "u-1", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": kind},
                   "namespace": "default", "object": {"metadata": {"name": "p"}, "spec": spec}}
        return admission.review_pod(ctx, lambda: synced, {"request": request})["response"]

    hostpath = {"volumes": [{"name": "v", "hostPath": {"path": "/"}}]}
    assert answer(hostpath) == {"uid": "u-1", "allowed": False, "status": {
        "code": 403, "reason": "Forbidden",
        "message": "this host cluster's tenant policy refuses the Pod: volume 'v': hostPath volumes are not allowed"}}
    assert answer({}) == {"uid": "u-1", "allowed": True}
    assert answer(hostpath, synced=False) == {"uid": "u-1", "allowed": True}
    assert answer(hostpath, kind="Service") == {"uid": "u-1", "allowed": True}
