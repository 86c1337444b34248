"""PersistentVolumes inside a vcluster (syncer/kinds/volumes.py): a claim Bound on the
host is Bound inside, to a volume made from the host claim alone.

On the kwok host the operator makes the host volumes and the host's own volume
controller binds the host claims to them; no container mounts them there. On the real
node, local-path provisions the volume, and a StatefulSet installed with
`helm install --wait` really writes to it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from controlplane.images import reference
from localkube.binaries import helm
from localkube.testing import kubectl
from syncer import names
from syncer.kinds.storageclasses import ANN_DEFAULT
from syncer.kinds.volumes import DRIVER
from tests.kube.helpers import eventually

from .test_tenant_policy import refused

pytestmark = pytest.mark.kube
CHART = Path(__file__).with_name("charts") / "stateful"


def host_volume(name: str, path: str, size: str, storage_class: str) -> client.V1PersistentVolume:
    return client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeSpec(capacity={"storage": size}, access_modes=["ReadWriteOnce"],
                                           storage_class_name=storage_class, host_path=client.V1HostPathVolumeSource(
                                               path=path)))


def claim(name: str, size: str, storage_class: str | None = None, **spec) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
                                                resources=client.V1VolumeResourceRequirements(
                                                    requests={"storage": size}), **spec))


def bound(core: client.CoreV1Api, name: str) -> client.V1PersistentVolumeClaim | None:
    found = core.read_namespaced_persistent_volume_claim(name, "default")
    return found if found.status.phase == "Bound" else None


def virtual_volumes(core: client.CoreV1Api) -> list[client.V1PersistentVolume]:
    return core.list_persistent_volume().items


def test_a_claim_bound_on_the_host_is_bound_inside_and_follows_expansion_and_deletion(make_vcluster, operator):
    tag = uuid.uuid4().hex[:8]
    secret_path, storage_class = f"/srv/host-only-{tag}", f"manual-{tag}"
    vc = make_vcluster("vol", policy={"storage_classes": [storage_class]})
    neighbour = make_vcluster("vol-next", policy={"storage_classes": [storage_class]})
    host_pv = operator.core.create_persistent_volume(host_volume(f"host-pv-{tag}", secret_path, "2Gi", storage_class))
    tenant = vc.tenant.core
    try:
        tenant.create_namespaced_persistent_volume_claim("default", claim("data", "1Gi", storage_class))
        inside = eventually(lambda: bound(tenant, "data"), timeout=90, what="the virtual claim Bound")
        assert inside.status.capacity == {"storage": "2Gi"}, "the host volume's size, not the request's"
        volume = tenant.read_persistent_volume(inside.spec.volume_name)
        assert volume.metadata.name == f"pvc-{inside.metadata.uid}"
        assert (volume.spec.claim_ref.name, volume.spec.claim_ref.uid) == ("data", inside.metadata.uid)
        assert (volume.spec.storage_class_name, volume.spec.access_modes) == (storage_class, ["ReadWriteOnce"])
        assert volume.spec.csi.driver == DRIVER and volume.spec.csi.volume_handle == inside.metadata.uid
        shown = json.dumps(vc.tenant.api.sanitize_for_serialization(volume))
        host_claim = operator.core.read_namespaced_persistent_volume_claim(vc.host_name("data"), vc.host_namespace)
        for host_fact in (host_pv.metadata.name, host_pv.metadata.uid, secret_path, vc.host_namespace,
                          host_claim.metadata.uid):
            assert host_fact not in shown
        assert vc.tenant.storage.read_csi_driver(DRIVER).spec.attach_required is False
        assert virtual_volumes(neighbour.tenant.core) == [], "another tenant's volumes are never visible"

        # Expanded on the host (as its resizer would: the volume, then the claim's status).
        operator.core.patch_persistent_volume(host_pv.metadata.name, {"spec": {"capacity": {"storage": "3Gi"}}})
        operator.core.patch_namespaced_persistent_volume_claim_status(
            vc.host_name("data"), vc.host_namespace, {"status": {"capacity": {"storage": "3Gi"}}})
        eventually(lambda: tenant.read_persistent_volume(volume.metadata.name).spec.capacity == {"storage": "3Gi"},
                   what="the virtual volume grown")
        eventually(lambda: bound(tenant, "data").status.capacity == {"storage": "3Gi"}, what="the claim's capacity")

        tenant.delete_namespaced_persistent_volume_claim("data", "default")
        eventually(lambda: not virtual_volumes(tenant), what="the virtual volume gone with its claim")
        eventually(lambda: not vc.host_objects()["persistentvolumeclaims"], what="the host claim gone")
    finally:
        operator.core.delete_persistent_volume(host_pv.metadata.name)


def test_a_tenant_cannot_bind_to_a_host_volume_or_have_its_own_volumes_touched(make_vcluster, operator):
    tag = uuid.uuid4().hex[:8]
    vc = make_vcluster("vol-escape", policy={"storage_classes": [f"own-{tag}"]})
    storage_class = f"manual-{tag}"
    # Another tenant's volume on the host, which this tenant names and selects.
    foreign = operator.core.create_persistent_volume(host_volume(f"foreign-{tag}", f"/srv/{tag}", "1Gi", storage_class))
    own = operator.core.create_persistent_volume(host_volume(f"own-{tag}", f"/srv/own-{tag}", "1Gi", f"own-{tag}"))
    tenant = vc.tenant.core
    # A volume of the tenant's own, labelled as if the syncer had made it: never the syncer's to change.
    decoy = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name="decoy", labels={names.LABEL_MANAGED_BY: vc.name}),
        spec=client.V1PersistentVolumeSpec(capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"],
                                           storage_class_name="nowhere", host_path=client.V1HostPathVolumeSource(
                                               path="/"), claim_ref=client.V1ObjectReference(
                                               namespace="default", name="nobody")))
    tenant.create_persistent_volume(decoy)
    try:
        tenant.create_namespaced_persistent_volume_claim("default", claim(
            "steal", "1Gi", f"own-{tag}", volume_name=foreign.metadata.name,
            selector=client.V1LabelSelector(match_labels={"x": "y"})))
        host_claim = eventually(lambda: vc.host_objects()["persistentvolumeclaims"], what="the host claim")[0]
        assert host_claim.spec.selector is None
        host_claim = eventually(lambda: (c := operator.core.read_namespaced_persistent_volume_claim(
            host_claim.metadata.name, vc.host_namespace)).status.phase == "Bound" and c, what="the host claim Bound")
        assert host_claim.spec.volume_name == own.metadata.name, "bound where the host put it, not where asked"
        assert operator.core.read_persistent_volume(foreign.metadata.name).status.phase == "Available"
        # Inside, the claim waits for the volume it named (which is not there): no volume of ours
        # is made for a claim bound, or wanting to be bound, elsewhere.
        assert tenant.read_namespaced_persistent_volume_claim("steal", "default").status.phase == "Pending"
        assert [v.metadata.name for v in virtual_volumes(tenant)] == ["decoy"]

        tenant.delete_namespaced_persistent_volume_claim("steal", "default")
        eventually(lambda: not vc.host_objects()["persistentvolumeclaims"], what="the host claim gone")
        assert tenant.read_persistent_volume("decoy").spec.host_path.path == "/"
    finally:
        for name in (foreign.metadata.name, own.metadata.name):
            operator.core.delete_persistent_volume(name)


def host_class(name: str, default: bool = False, **fields) -> client.V1StorageClass:
    return client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=name, annotations={ANN_DEFAULT: "true"} if default else None),
        provisioner="example.com/host-only-provisioner", parameters={"path": "/srv/host-only"}, **fields)


def virtual_classes(vc) -> dict[str, client.V1StorageClass]:
    return {c.metadata.name: c for c in vc.tenant.storage.list_storage_class().items}


def test_the_host_default_and_the_listed_classes_are_mirrored_and_other_classes_refused(make_vcluster, operator):
    tag = uuid.uuid4().hex[:8]
    default, listed, unlisted = f"standard-{tag}", f"fast-{tag}", f"reserved-{tag}"
    storage = client.StorageV1Api(operator.api)
    storage.create_storage_class(host_class(default, default=True, volume_binding_mode="WaitForFirstConsumer",
                                            allow_volume_expansion=True))
    storage.create_storage_class(host_class(listed))
    storage.create_storage_class(host_class(unlisted))
    try:
        vc = make_vcluster("classes", policy={"storage_classes": [listed]})
        classes = eventually(lambda: (c := virtual_classes(vc)) and set(c) == {default, listed} and c,
                             what="the two offered classes mirrored")
        mirror = classes[default]
        assert mirror.metadata.annotations[ANN_DEFAULT] == "true"
        assert classes[listed].metadata.annotations[ANN_DEFAULT] == "false"
        assert (mirror.provisioner, mirror.reclaim_policy, mirror.parameters) == (DRIVER, "Delete", None)
        assert (mirror.volume_binding_mode, mirror.allow_volume_expansion) == ("WaitForFirstConsumer", True)

        # The tenant's changes to a mirror are undone.
        vc.tenant.storage.delete_storage_class(default)
        vc.tenant.storage.patch_storage_class(listed, {"metadata": {"annotations": {ANN_DEFAULT: "true"}}})
        eventually(lambda: (c := virtual_classes(vc)).get(default) and
                   c[listed].metadata.annotations[ANN_DEFAULT] == "false", what="the mirrors restored")

        # A claim without a class gets the default (the vcluster's admission names it) and reaches the
        # host; one naming an unlisted host class, or a class of the tenant's own, is refused.
        vc.tenant.storage.create_storage_class(client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=f"mine-{tag}"), provisioner="example.com/mine"))
        for name, storage_class in (("plain", None), ("reserved", unlisted), ("mine", f"mine-{tag}")):
            vc.tenant.core.create_namespaced_persistent_volume_claim("default", claim(name, "1Gi", storage_class))
        host_claims = eventually(lambda: vc.host_objects()["persistentvolumeclaims"], what="the host claim")
        assert [(c.metadata.annotations[names.ANN_NAME], c.spec.storage_class_name) for c in host_claims] == \
            [("plain", default)]
        for name, storage_class in (("reserved", unlisted), ("mine", f"mine-{tag}")):
            refused(vc, name, f"storage class {storage_class!r} is not offered")
        assert len(vc.host_objects()["persistentvolumeclaims"]) == 1
        assert virtual_classes(vc)[f"mine-{tag}"].provisioner == "example.com/mine", "the tenant's own class stays"

        # The host's default moves: the mirror follows.
        storage.patch_storage_class(default, {"metadata": {"annotations": {ANN_DEFAULT: "false"}}})
        eventually(lambda: default not in virtual_classes(vc), what="the former default no longer offered")
    finally:
        for name in (default, listed, unlisted):
            storage.delete_storage_class(name)


@pytest.mark.realnode
def test_helm_install_wait_of_a_statefulset_with_a_volume_completes(make_real_vcluster):
    vc = make_real_vcluster("vol-real")
    installed = subprocess.run(
        [str(helm()), "install", "db", str(CHART), "--kubeconfig", str(vc.kubeconfig), "--wait", "--timeout", "4m",
         "--set", f"image={reference('busybox')}"], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    inside = bound(vc.tenant.core, "data-db-0")
    assert inside is not None and inside.status.capacity == {"storage": "64Mi"}
    wrote = eventually(lambda: (r := kubectl(vc.kubeconfig, "exec", "db-0", "--", "cat", "/data/proof",
                                             check=False)).returncode == 0 and r, what="the pod's file on its volume")
    assert wrote.stdout.strip() == "written-by-the-pod"
    uninstalled = subprocess.run([str(helm()), "uninstall", "db", "--kubeconfig", str(vc.kubeconfig), "--wait"],
                                 capture_output=True, text=True, timeout=180)
    assert uninstalled.returncode == 0, uninstalled.stderr
    vc.tenant.core.delete_namespaced_persistent_volume_claim("data-db-0", "default")
    eventually(lambda: not virtual_volumes(vc.tenant.core), what="the virtual volume gone with its claim")
