"""Escapes a tenant might try through what the syncer copies to the host, each attempted
against the real API servers (kwok host, bare vcluster): the test fails if it works.

kwok runs no containers, so these prove what reaches the host API (which objects, with
which spec), not what a process in a pod could do; that the host API never receives a
hostPath volume is what keeps a kubelet from mounting it.
"""

from __future__ import annotations

import json
import uuid

from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer import admission, names
from tests.kube.helpers import eventually, new_namespace

from .test_pods import running
from .test_services import endpoint_ips, service

IMAGE = "registry.example/app:1"


def pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": IMAGE}], **spec}}


def refusals(vcluster, name: str) -> list:
    events = vcluster.tenant.core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}")
    return [e for e in events.items if e.reason == "HostRefused"]


def refused(vcluster, name: str, *words: str):
    event = eventually(lambda: refusals(vcluster, name), what=f"HostRefused on {name}")[0]
    assert event.type == "Warning" and all(w in event.message for w in words), event.message
    return event


def create_refused(vcluster, manifest: dict, *words: str) -> None:
    """Create a pod the tenant policy refuses: refused at creation by the syncer's pod
    webhook, or, before the syncer has registered it (or after a tenant deleted it), stored
    and refused by the syncer as it syncs. Either way it never reaches the host."""
    try:
        vcluster.tenant.core.create_namespaced_pod("default", manifest)
    except ApiException as exc:
        message = json.loads(exc.body)["message"]
        assert exc.status == 403 and "tenant policy refuses the Pod" in message, message
        assert all(w in message for w in words), message
        return
    refused(vcluster, manifest["metadata"]["name"], *words)


def refused_at_admission(vcluster, manifest: dict, dry_run: str | None = None) -> ApiException | None:
    try:
        vcluster.tenant.core.create_namespaced_pod("default", manifest, dry_run=dry_run)
    except ApiException as exc:
        return exc if exc.status == 403 else None
    return None


def host_cluster_ip(vcluster, name: str) -> str:
    return vcluster.operator.core.read_namespaced_service(vcluster.host_name(name), vcluster.host_namespace).spec.cluster_ip


def host_pod_of(vcluster, name: str):
    return [p for p in vcluster.host_pods() if p.metadata.annotations[names.ANN_NAME] == name]


def test_pods_with_host_network_or_inline_volumes_never_reach_the_host(vcluster):
    tenant = vcluster.tenant.core
    escapes = {
        "hostpath": {"name": "v", "hostPath": {"path": "/etc"}},
        "nfs": {"name": "v", "nfs": {"server": "10.0.0.5", "path": "/exports"}},
        "csi": {"name": "v", "csi": {"driver": "secrets-store.csi.k8s.io"}},
    }
    tenant.create_namespaced_pod("default", pod("plain", volumes=[{"name": "v", "emptyDir": {}}]))
    reasons = {"hostpath": "hostPath volumes are not allowed", "nfs": "nfs volumes are not allowed",
               "csi": "CSI driver 'secrets-store.csi.k8s.io' is not allowed"}
    for name, volume in escapes.items():
        create_refused(vcluster, pod(name, volumes=[volume]), reasons[name])
    eventually(lambda: running(host_pod_of(vcluster, "plain")), what="the plain pod Running on the host")
    assert [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()] == ["plain"]


def test_a_pod_the_tenant_policy_refuses_is_refused_at_creation_and_without_the_webhook_as_it_syncs(vcluster):
    """The syncer's pod webhook answers a create (a dry run too) with the policy's reason,
    so nothing is stored; a tenant, cluster-admin inside, may delete the webhook, and then
    the syncer refuses the stored pod as before: the webhook is a courtesy, not the wall."""
    tenant = vcluster.tenant.core
    hostpath = pod("hostpath", volumes=[{"name": "v", "hostPath": {"path": "/etc"}}])
    dry_run = eventually(lambda: refused_at_admission(vcluster, hostpath, dry_run="All"),
                         what="the syncer's pod webhook answering")
    assert json.loads(dry_run.body)["message"] == (
        'admission webhook "tenant-policy.pods.vcportal.io" denied the request: this host cluster\'s tenant policy '
        "refuses the Pod: volume 'v': hostPath volumes are not allowed")
    assert refused_at_admission(vcluster, hostpath) is not None
    client.NodeV1Api(vcluster.tenant.api).create_runtime_class(client.V1RuntimeClass(
        metadata=client.V1ObjectMeta(name="host-vm"), handler="kata"))
    unlisted_runtime = refused_at_admission(vcluster, pod("vm", runtimeClassName="host-vm"), dry_run="All")
    assert unlisted_runtime is not None and "runtimeClassName 'host-vm'" in json.loads(unlisted_runtime.body)["message"]
    assert not [p for p in tenant.list_namespaced_pod("default").items if p.metadata.name == "hostpath"]
    tenant.create_namespaced_pod("default", pod("plain"))  # what the policy allows is admitted

    client.AdmissionregistrationV1Api(vcluster.tenant.api).delete_validating_webhook_configuration(
        admission.POD_CONFIGURATION)
    eventually(lambda: refused_at_admission(vcluster, hostpath, dry_run="All") is None,
               what="the API server without the webhook")
    tenant.create_namespaced_pod("default", hostpath)
    refused(vcluster, "hostpath", "hostPath volumes are not allowed")
    eventually(lambda: host_pod_of(vcluster, "plain"), what="the plain pod on the host")
    assert [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()] == ["plain"]


def test_an_inline_csi_volume_of_a_driver_the_host_allows_reaches_it_with_the_tenants_own_secret(make_vcluster):
    vcluster = make_vcluster(policy={"csi_drivers": ["secrets-store.csi.k8s.io"]})
    tenant = vcluster.tenant.core
    tenant.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name="creds"),
                                                               string_data={"k": "v"}))
    tenant.create_namespaced_pod("default", pod("vault", volumes=[{"name": "v", "csi": {
        "driver": "secrets-store.csi.k8s.io", "nodePublishSecretRef": {"name": "creds"}}}]))

    host = eventually(lambda: host_pod_of(vcluster, "vault"), what="the host pod")[0]
    assert host.spec.volumes[0].csi.node_publish_secret_ref.name == vcluster.host_name("creds")
    secret = vcluster.operator.core.read_namespaced_secret(vcluster.host_name("creds"), vcluster.host_namespace)
    assert secret.metadata.annotations[names.ANN_NAME] == "creds"


def test_an_ephemeral_volume_naming_a_host_volume_binds_nothing(vcluster, operator):
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    operator.core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=victim),
        spec=client.V1PersistentVolumeSpec(capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"],
                                           storage_class_name="reserved",
                                           host_path=client.V1HostPathVolumeSource(path="/srv/other-tenant"))))
    try:
        template = {"metadata": {"labels": {"app": "x", names.LABEL_MANAGED_BY: "someone-else"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                             "volumeName": victim, "selector": {"matchLabels": {"any": "pv"}}}}
        vcluster.tenant.core.create_namespaced_pod("default", pod("grab", volumes=[
            {"name": "data", "ephemeral": {"volumeClaimTemplate": template}}]))

        host = eventually(lambda: host_pod_of(vcluster, "grab"), what="the host pod")[0]
        host_template = host.spec.volumes[0].ephemeral.volume_claim_template
        assert host_template.spec.volume_name is None and host_template.spec.selector is None
        assert host_template.metadata.labels == {"app": "x", names.LABEL_MANAGED_BY: vcluster.name,
                                                 names.LABEL_NAMESPACE: "default"}
        claim_name = f"{host.metadata.name}-data"
        claim = eventually(lambda: operator.core.read_namespaced_persistent_volume_claim(
            claim_name, vcluster.host_namespace), what="the host's ephemeral claim")
        assert claim.spec.volume_name in (None, "")
        assert operator.core.read_persistent_volume(victim).spec.claim_ref is None
    finally:
        operator.core.delete_persistent_volume(victim)


def test_tolerations_are_stripped_and_host_node_selectors_and_runtime_classes_refused(vcluster):
    tenant = vcluster.tenant.core
    tenant.create_namespaced_pod("default", pod("tolerant", tolerations=[{"operator": "Exists"}]))
    # A placement the host will not give is accepted, as Kubernetes accepts a pod it cannot
    # schedule, and stays Pending with the reason (the pod webhook lets it through).
    tenant.create_namespaced_pod("default", pod("control", nodeSelector={"node-role.kubernetes.io/control-plane": ""}))
    tenant.create_namespaced_pod("default", pod("affine", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}}))
    client.NodeV1Api(vcluster.tenant.api).create_runtime_class(client.V1RuntimeClass(
        metadata=client.V1ObjectMeta(name="privileged-vm"), handler="kata"))
    create_refused(vcluster, pod("runtime", runtimeClassName="privileged-vm"), "runtimeClassName 'privileged-vm'")

    host = eventually(lambda: host_pod_of(vcluster, "tolerant"), what="the tolerant pod on the host")[0]
    assert not [t for t in host.spec.tolerations or [] if not t.key], "no toleration of every taint"
    refused(vcluster, "control", "nodeSelector", "node-role.kubernetes.io/control-plane")
    refused(vcluster, "affine", "node affinity", "node-role.kubernetes.io/control-plane")
    assert tenant.read_namespaced_pod("control", "default").status.phase == "Pending"
    assert [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()] == ["tolerant"]


def test_a_virtual_node_shows_no_host_machine_identifiers(make_vcluster, operator):
    vcluster = make_vcluster(policy={"node_label_keys": ["kubernetes.io/hostname"]})
    node_name = f"kwok-ident-{uuid.uuid4().hex[:6]}"
    identity = {"machineID": "f00dfeedf00dfeedf00dfeedf00dfeed", "systemUUID": "5c3c5d8c-host-uuid",
                "bootID": "b007b007-host-boot", "architecture": "amd64", "operatingSystem": "linux",
                "osImage": "", "kernelVersion": "", "kubeletVersion": "fake", "kubeProxyVersion": "",
                "containerRuntimeVersion": ""}
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    operator.core.create_node({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node_name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": node_name, "type": "kwok"}},
        "status": {"capacity": capacity, "allocatable": capacity, "nodeInfo": identity}})
    try:
        eventually(lambda: operator.core.read_node(node_name).status.node_info.machine_id == identity["machineID"],
                   what="the host node with its machine ID")
        vcluster.tenant.core.create_namespaced_pod("default", pod("pinned", nodeSelector={
            "kubernetes.io/hostname": node_name}))

        virtual = eventually(lambda: vcluster.tenant.core.read_node(node_name), what="the virtual node")
        info = virtual.status.node_info
        assert (info.machine_id, info.system_uuid, info.boot_id) == ("", "", "")
        assert identity["machineID"] not in str(virtual.to_dict())
    finally:
        operator.core.delete_node(node_name)


def test_hand_written_endpoints_reach_the_host_only_for_the_vclusters_own_pods(vcluster, operator):
    other_ns = new_namespace(operator.core, "other-tenant")
    try:
        operator.core.create_namespaced_pod(other_ns, client.V1Pod(
            metadata=client.V1ObjectMeta(name="neighbour"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=IMAGE)])))
        neighbour_ip = eventually(lambda: operator.core.read_namespaced_pod("neighbour", other_ns).status.pod_ip,
                                  what="the other tenant's pod IP")
        tenant = vcluster.tenant.core
        tenant.create_namespaced_pod("default", pod("mine"))
        own_ip = eventually(lambda: tenant.read_namespaced_pod("mine", "default").status.pod_ip, what="own pod IP")
        host_api_ip = operator.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip

        tenant.create_namespaced_service("default", service("sneaky"))
        eventually(lambda: host_cluster_ip(vcluster, "sneaky") == tenant.read_namespaced_service(
            "sneaky", "default").spec.cluster_ip, what="the service recreated with the host's IP")
        tenant.create_namespaced_endpoints("default", {"metadata": {"name": "sneaky"}, "subsets": [{
            "addresses": [{"ip": own_ip}, {"ip": neighbour_ip}, {"ip": host_api_ip},
                          {"ip": neighbour_ip, "targetRef": {"kind": "Pod", "name": "neighbour",
                                                             "namespace": other_ns}}],
            "ports": [{"port": 8080}]}]})

        host_name = vcluster.host_name("sneaky")
        eventually(lambda: endpoint_ips(operator.core.read_namespaced_endpoints(host_name, vcluster.host_namespace))
                   == {own_ip}, what="only the vcluster's own pod on the host")
        refused(vcluster, "sneaky", neighbour_ip, host_api_ip)
        host = operator.core.read_namespaced_endpoints(host_name, vcluster.host_namespace)
        assert all(a.target_ref is None for s in host.subsets for a in s.addresses)
    finally:
        operator.core.delete_namespace(other_ns)


def test_an_external_name_service_is_refused(vcluster):
    vcluster.tenant.core.create_namespaced_service("default", {
        "metadata": {"name": "metadata"}, "spec": {"type": "ExternalName",
                                                   "externalName": "kubernetes.default.svc.cluster.local"}})
    vcluster.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))

    refused(vcluster, "metadata", "ExternalName Services are not allowed")
    eventually(lambda: vcluster.host_objects()["services"], what="the ordinary service on the host")
    assert [s.metadata.annotations[names.ANN_NAME] for s in vcluster.host_objects()["services"]] == ["web"]


def test_a_service_with_a_chosen_cluster_ip_gets_the_one_the_host_allocates(vcluster, operator):
    chosen = "10.96.200.200"
    vcluster.tenant.core.create_namespaced_service("default", service("picked", {"app": "x"}, cluster_ip=chosen))

    def aligned():
        ip = host_cluster_ip(vcluster, "picked")
        return vcluster.tenant.core.read_namespaced_service("picked", "default").spec.cluster_ip == ip and ip

    assert eventually(aligned, what="the virtual service with the host's ClusterIP") != chosen
