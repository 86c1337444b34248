"""Dynamic volumes on a host cluster with a real node: rancher's local-path-provisioner
(localkube/addons.py) behind the default StorageClass, so a PVC binds as on any real
cluster, its data outlives the pod, and deleting it deletes the PV and the directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from localkube import LocalCluster, addons
from controlplane.images import reference
from localkube.realnode import NODE_NAME
from tests.kube.helpers import eventually, logs, new_namespace

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def test_the_provisioner_is_pinned_to_the_node_and_keeps_volumes_in_the_given_directory():
    manifests = addons.local_path_manifests("provisioner:1", "busybox:1", "node-a", Path("/state/node/local-path"))
    by_kind = {m["kind"]: m for m in manifests}

    pod_spec = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"kubernetes.io/hostname": "node-a"}
    assert pod_spec["containers"][0]["image"] == "provisioner:1"
    assert json.loads(by_kind["ConfigMap"]["data"]["config.json"]) == {
        "nodePathMap": [{"node": "node-a", "paths": ["/state/node/local-path"]}],
    }
    assert "image: busybox:1" in by_kind["ConfigMap"]["data"]["helperPod.yaml"]
    assert by_kind["StorageClass"]["metadata"]["annotations"] == {DEFAULT_CLASS: "true"}


def volume_pod(name: str, claim: str, script: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            termination_grace_period_seconds=1,
            volumes=[client.V1Volume(
                name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=claim),
            )],
            containers=[client.V1Container(
                name="main", image=reference("busybox"), command=["sh", "-c", script],
                volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
            )],
        ),
    )


def default_class_claim(name: str) -> client.V1PersistentVolumeClaim:
    """A claim on the default StorageClass."""
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )


def run_to_completion(cluster, core: client.CoreV1Api, namespace: str, pod: client.V1Pod) -> str:
    core.create_namespaced_pod(namespace, pod)
    name = pod.metadata.name
    phase = eventually(
        lambda: core.read_namespaced_pod(name, namespace).status.phase in ("Succeeded", "Failed")
        and core.read_namespaced_pod(name, namespace).status.phase,
        timeout=120, what=f"pod {name} to finish",
    )
    output = logs(cluster, namespace, name)
    assert phase == "Succeeded", output
    return output


def gone(read) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


@pytest.mark.kube
def test_the_default_storage_class_is_local_path(real_host_cluster):
    storage = client.StorageV1Api(real_host_cluster.api_client())
    defaults = [c.metadata.name for c in storage.list_storage_class().items
                if (c.metadata.annotations or {}).get(DEFAULT_CLASS) == "true"]
    assert defaults == [addons.LOCAL_PATH_STORAGE_CLASS]
    local_path = storage.read_storage_class(addons.LOCAL_PATH_STORAGE_CLASS)
    assert (local_path.reclaim_policy, local_path.volume_binding_mode) == ("Delete", "WaitForFirstConsumer")


@pytest.mark.kube
def test_a_claim_keeps_its_data_across_pods_and_its_volume_goes_with_it(real_host_cluster):
    api = real_host_cluster.api_client()
    core = client.CoreV1Api(api)
    ns = new_namespace(core)
    core.create_namespaced_persistent_volume_claim(ns, default_class_claim("data"))

    run_to_completion(real_host_cluster, core, ns, volume_pod("writer", "data", "echo kept > /data/note"))
    claim = core.read_namespaced_persistent_volume_claim("data", ns)
    assert claim.status.phase == "Bound"
    volume = core.read_persistent_volume(claim.spec.volume_name)
    directory = Path(volume.spec.local.path if volume.spec.local else volume.spec.host_path.path)
    assert directory.parent == real_host_cluster.real_node().volumes_dir
    assert volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values == [NODE_NAME]
    core.delete_namespaced_pod("writer", ns)
    eventually(lambda: gone(lambda: core.read_namespaced_pod("writer", ns)), what="the writer pod to go")

    assert "kept" in run_to_completion(real_host_cluster, core, ns, volume_pod("reader", "data", "cat /data/note"))

    core.delete_namespaced_pod("reader", ns)
    core.delete_namespaced_persistent_volume_claim("data", ns)
    eventually(lambda: gone(lambda: core.read_persistent_volume(volume.metadata.name)), timeout=120,
               what="the PV to be deleted")
    eventually(lambda: not directory.exists(), timeout=60, what=f"{directory} to be removed")


@pytest.mark.kube
def test_a_stopped_node_with_a_volume_in_use_leaves_nothing_that_blocks_deleting_its_state(tmp_path):
    state = tmp_path / "host"
    cluster = LocalCluster(state)
    cluster.init(name="volumes", nodes=0, real_nodes=1)
    try:
        cluster.start(timeout=240)
        core = client.CoreV1Api(cluster.api_client())
        ns = new_namespace(core)
        core.create_namespaced_persistent_volume_claim(ns, default_class_claim("data"))
        core.create_namespaced_pod(ns, volume_pod("user", "data", "echo in use > /data/note; sleep 3600"))
        volumes_dir = cluster.real_node().volumes_dir
        eventually(lambda: any((d / "note").exists() for d in volumes_dir.iterdir()), timeout=120,
                   what="the pod's file in its volume")
    finally:
        cluster.stop()

    assert cluster.real_node().leftovers() == {"processes": [], "mounts": [], "cgroups": []}
    shutil.rmtree(state)
    assert not state.exists()
