"""ConfigMaps, Secrets and claims that pods use are copied to the host, and only those."""

from __future__ import annotations

import base64

from kubernetes import client

from syncer import names
from tests.kube.helpers import eventually

from .test_pods import running

IMAGE = "registry.example/app:1"


def pod_using(name: str, *, configmap: str | None = None, secret: str | None = None,
              claim: str | None = None) -> client.V1Pod:
    volumes, mounts, env = [], [], []
    if configmap:
        volumes.append(client.V1Volume(name="config", config_map=client.V1ConfigMapVolumeSource(name=configmap)))
        mounts.append(client.V1VolumeMount(name="config", mount_path="/etc/config"))
        env.append(client.V1EnvVar(name="MODE", value_from=client.V1EnvVarSource(
            config_map_key_ref=client.V1ConfigMapKeySelector(name=configmap, key="mode"))))
    if secret:
        volumes.append(client.V1Volume(name="creds", secret=client.V1SecretVolumeSource(secret_name=secret)))
        mounts.append(client.V1VolumeMount(name="creds", mount_path="/etc/creds"))
    if claim:
        volumes.append(client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
            claim_name=claim)))
        mounts.append(client.V1VolumeMount(name="data", mount_path="/data"))
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        volumes=volumes, containers=[client.V1Container(name="app", image=IMAGE, volume_mounts=mounts, env=env)]))


def configmap(name: str, **data) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def secret(name: str, **data) -> client.V1Secret:
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)


def host_data(vcluster, kind: str, name: str) -> dict | None:
    read = {"configmap": vcluster.operator.core.read_namespaced_config_map,
            "secret": vcluster.operator.core.read_namespaced_secret}[kind]
    try:
        return read(vcluster.host_name(name), vcluster.host_namespace).data
    except client.ApiException:
        return None


def test_a_configmap_and_a_secret_mounted_by_a_pod_are_copied_and_follow_changes(vcluster):
    tenant = vcluster.tenant.core
    tenant.create_namespaced_config_map("default", configmap("settings", mode="fast"))
    tenant.create_namespaced_secret("default", secret("creds", password="hunter2"))
    tenant.create_namespaced_config_map("default", configmap("unused", mode="none"))
    tenant.create_namespaced_pod("default", pod_using("app", configmap="settings", secret="creds"))

    eventually(lambda: running(tenant.list_namespaced_pod("default").items), what="the pod Running")
    assert host_data(vcluster, "configmap", "settings") == {"mode": "fast"}
    assert base64.b64decode(host_data(vcluster, "secret", "creds")["password"]) == b"hunter2"
    assert host_data(vcluster, "configmap", "unused") is None

    host_pod = vcluster.operator.core.read_namespaced_pod(vcluster.host_name("app"), vcluster.host_namespace)
    volumes = {v.name: v for v in host_pod.spec.volumes}
    assert volumes["config"].config_map.name == vcluster.host_name("settings")
    assert volumes["creds"].secret.secret_name == vcluster.host_name("creds")
    env = host_pod.spec.containers[0].env
    assert [e.value_from.config_map_key_ref.name for e in env if e.name == "MODE"] == [vcluster.host_name("settings")]

    tenant.patch_namespaced_config_map("settings", "default", {"data": {"mode": "slow"}})
    eventually(lambda: host_data(vcluster, "configmap", "settings") == {"mode": "slow"}, what="the change on the host")

    tenant.delete_namespaced_pod("app", "default")
    eventually(lambda: host_data(vcluster, "configmap", "settings") is None
               and host_data(vcluster, "secret", "creds") is None,
               what="the copies removed once no pod uses them")


def test_a_pod_referencing_a_missing_secret_waits_and_starts_once_it_appears(vcluster):
    tenant = vcluster.tenant.core
    tenant.create_namespaced_pod("default", pod_using("patient", secret="later"))

    def waiting_event():
        events = tenant.list_namespaced_event("default", field_selector="involvedObject.name=patient").items
        return [e for e in events if e.reason == "WaitingForReferences"]

    event = eventually(waiting_event, what="an event saying what the pod waits for")[0]
    assert event.type == "Warning" and 'secret "later"' in event.message
    assert not vcluster.host_pods()
    assert tenant.read_namespaced_pod("patient", "default").status.phase == "Pending"

    tenant.create_namespaced_secret("default", secret("later", token="abc"))

    eventually(lambda: tenant.read_namespaced_pod("patient", "default").status.phase == "Running",
               what="the pod Running once the secret exists")
    assert host_data(vcluster, "secret", "later") is not None


def test_a_pod_with_a_claim_gets_a_host_claim(vcluster):
    tenant = vcluster.tenant.core
    tenant.create_namespaced_persistent_volume_claim("default", client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                                resources=client.V1VolumeResourceRequirements(
                                                    requests={"storage": "1Gi"}))))
    tenant.create_namespaced_pod("default", pod_using("db", claim="data"))

    claims = eventually(lambda: vcluster.host_objects()["persistentvolumeclaims"], what="the host claim")
    assert [c.metadata.name for c in claims] == [vcluster.host_name("data")]
    assert claims[0].metadata.annotations[names.ANN_NAME] == "data"
    assert claims[0].spec.resources.requests == {"storage": "1Gi"}
    host_pod = eventually(lambda: vcluster.host_pods(), what="the host pod")[0]
    assert [v.persistent_volume_claim.claim_name for v in host_pod.spec.volumes if v.persistent_volume_claim] \
        == [vcluster.host_name("data")]

    # No provisioner on this host: the host claim stays Pending, and the tenant sees why
    # the pod does not start through the host scheduler's event.
    eventually(lambda: [e for e in tenant.list_namespaced_event("default", field_selector="involvedObject.name=db").items
                        if e.reason == "FailedScheduling"], what="the host's FailedScheduling event in the vcluster")

    tenant.delete_namespaced_pod("db", "default", grace_period_seconds=0)
    tenant.delete_namespaced_persistent_volume_claim("data", "default")
    eventually(lambda: not vcluster.host_objects()["persistentvolumeclaims"], what="the host claim gone")
