"""ClusterTrustBundle projections: resolved from the vcluster's bundles, as a kubelet would.

The pure rules here (which bundles a projection selects, the ConfigMap that holds them,
the host pod's volume); the real node's kubelet mounting them, a bundle's change, a
required bundle that is missing and the host's bundles staying out of reach, below.
"""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from controlplane.pki import new_ca
from localkube.testing import kubectl
from syncer import names
from syncer.kinds.pods import translate as pods
from syncer.kinds.pods import trustbundles
from syncer.translate import Target
from tests.kube.helpers import busybox_pod, eventually

TARGET = Target(vcluster="vc", namespace="host-ns")
ONE, TWO, THREE = (new_ca(name).cert_pem.decode() for name in ("one", "two", "three"))


def bundle(name: str, pem: str, signer: str | None = None, labels: dict | None = None) -> dict:
    spec = {"trustBundle": pem, **({"signerName": signer} if signer else {})}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def projected_pod(*projections: dict, **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "shop", "uid": "u"}, "spec": {
        "containers": [{"name": "app", "image": "app:1"}],
        "volumes": [{"name": "trust", "projected": {"sources": [{"clusterTrustBundle": p} for p in projections]}}],
        **spec}}


BUNDLES = [bundle("plain", ONE), bundle("example.com:ca:live", TWO, "example.com/ca", {"alive": "true"}),
           bundle("example.com:ca:copy", TWO, "example.com/ca", {"alive": "true"}),  # the same certificate again
           bundle("example.com:ca:dead", THREE, "example.com/ca", {"alive": "false"}),
           bundle("other.io:ca:x", ONE, "other.io/ca", {"alive": "true"})]


def data_for(*projections: dict) -> dict:
    return trustbundles.configmap_data(trustbundles.bundle_sources(projected_pod(*projections)), BUNDLES)


def test_a_bundle_by_name_is_its_certificates():
    assert data_for({"name": "plain", "path": "ca.pem"}) == {"bundle-0": ONE}


def test_a_signer_and_selector_select_among_that_signers_bundles_only_and_certificates_come_once():
    live = {"signerName": "example.com/ca", "labelSelector": {"matchLabels": {"alive": "true"}}, "path": "a"}
    everything = {"signerName": "example.com/ca", "labelSelector": {}, "path": "b"}
    by_expression = {"signerName": "example.com/ca", "path": "c",
                     "labelSelector": {"matchExpressions": [{"key": "alive", "operator": "NotIn", "values": ["true"]}]}}
    data = data_for(live, everything, by_expression)
    assert data["bundle-0"] == TWO and data["bundle-2"] == THREE
    assert data["bundle-1"] in (TWO + THREE, THREE + TWO) and ONE not in data["bundle-1"]


def test_nothing_found_is_an_empty_file_when_optional_and_no_file_otherwise():
    no_selector = {"signerName": "example.com/ca", "path": "a", "optional": True}  # nil selects nothing
    assert data_for(no_selector, {"name": "missing", "path": "b", "optional": True}) == {"bundle-0": "", "bundle-1": ""}
    assert data_for({"name": "missing", "path": "b"}) == {}


def test_the_host_pod_mounts_each_projection_from_its_key_of_the_configmap():
    pod = projected_pod({"name": "plain", "path": "ca.pem"}, {"name": "plain", "path": "again.pem", "user": 1000},
                        {"name": "missing", "path": "opt.pem", "optional": True})
    sources = pods.host_pod(pod, TARGET, None, trust_bundles="bundles-cm")["spec"]["volumes"][0]["projected"]["sources"]
    assert sources == [
        {"configMap": {"name": "bundles-cm", "items": [{"key": "bundle-0", "path": "ca.pem"}]}},
        {"configMap": {"name": "bundles-cm", "items": [{"key": "bundle-0", "path": "again.pem", "user": 1000,
                                                        "mode": 0o600}]}},
        {"configMap": {"name": "bundles-cm", "items": [{"key": "bundle-1", "path": "opt.pem"}]}},
    ]
    with pytest.raises(ValueError):
        pods.host_pod(pod, TARGET, None)


@pytest.mark.parametrize("security, owner_only", [
    ({}, False),
    ({"securityContext": {"fsGroup": 2000}}, True),
    ({"securityContext": {"runAsUser": 1000}}, True),  # every container runs as 1000
])
def test_files_are_owner_only_when_the_kubelet_would_make_them_so(security, owner_only):
    pod = projected_pod({"name": "plain", "path": "ca.pem"}, **security)
    item = pods.host_pod(pod, TARGET, None, trust_bundles="cm")["spec"]["volumes"][0]["projected"]["sources"][0]
    assert (item["configMap"]["items"][0].get("mode") == 0o600) is owner_only


def test_a_bundle_change_concerns_the_pods_naming_it_or_its_signer():
    pod = projected_pod({"name": "plain", "path": "a"}, {"signerName": "example.com/ca", "labelSelector": {},
                                                         "path": "b"})
    assert trustbundles.referenced(pod) == ["name:plain", "signer:example.com/ca"]
    assert trustbundles.keys_for(BUNDLES[1]) == ["name:example.com:ca:live", "signer:example.com/ca"]


# On the real node -------------------------------------------------------------

CUSTOM = client.CustomObjectsApi
GROUP, VERSION, PLURAL = "certificates.k8s.io", "v1", "clustertrustbundles"


def create_bundle(api: client.ApiClient, body: dict) -> None:
    CUSTOM(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTrustBundle", **copy.deepcopy(body)})


def projecting_pod(name: str, *projections: dict) -> client.V1Pod:
    pod = busybox_pod(name, "sleep 3600")
    pod.spec.volumes = [client.V1Volume(name="trust", projected=client.V1ProjectedVolumeSource(sources=[
        {"clusterTrustBundle": p} for p in projections]))]
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="trust", mount_path="/trust")]
    return pod


@pytest.mark.kube
@pytest.mark.realnode
def test_a_pod_mounts_the_vclusters_bundles_and_never_the_hosts(make_real_vcluster, real_host_cluster):
    vc = make_real_vcluster("bundles")
    host_ca = new_ca("host-only").cert_pem.decode()
    create_bundle(real_host_cluster.api_client(), bundle("host-bundle-test", host_ca))  # the escape target
    try:
        for body in BUNDLES:
            create_bundle(vc.tenant.api, body)
        core = vc.tenant.core
        core.create_namespaced_pod("default", projecting_pod(
            "reader", {"name": "plain", "path": "plain.pem"},
            {"signerName": "example.com/ca", "labelSelector": {"matchLabels": {"alive": "true"}}, "path": "live.pem"},
            # The host's bundle, by name: the vcluster has none of that name.
            {"name": "host-bundle-test", "path": "host.pem", "optional": True}))
        core.create_namespaced_pod("default", projecting_pod("waiter", {"name": "later", "path": "later.pem"}))
        eventually(lambda: core.read_namespaced_pod("reader", "default").status.phase == "Running", timeout=120,
                   what="the pod projecting trust bundles Running")

        def read(pod: str, path: str) -> str:
            return kubectl(vc.kubeconfig, "exec", pod, "--", "cat", f"/trust/{path}").stdout

        assert read("reader", "plain.pem") == ONE
        assert read("reader", "live.pem") == TWO, "the two live bundles' one certificate, once"
        assert read("reader", "host.pem") == "", "the host's bundle is not the vcluster's"

        status = core.read_namespaced_pod("waiter", "default").status
        assert status.phase == "Pending", "a required bundle that does not exist keeps the pod from starting"
        create_bundle(vc.tenant.api, bundle("later", THREE))
        eventually(lambda: core.read_namespaced_pod("waiter", "default").status.phase == "Running", timeout=120,
                   what="the pod starting once its bundle exists")
        assert read("waiter", "later.pem") == THREE

        CUSTOM(vc.tenant.api).patch_cluster_custom_object(GROUP, VERSION, PLURAL, "plain",
                                                          {"spec": {"trustBundle": THREE}})
        host_map = names.trust_bundles_name(vc.host_name("reader"))
        eventually(lambda: vc.operator.core.read_namespaced_config_map(host_map, vc.host_namespace).data["bundle-0"]
                   == THREE, timeout=30, what="a bundle's change reaching the pod's host ConfigMap")
        assert host_ca not in str(vc.operator.core.read_namespaced_config_map(host_map, vc.host_namespace).data)
    finally:
        CUSTOM(real_host_cluster.api_client()).delete_cluster_custom_object(GROUP, VERSION, PLURAL, "host-bundle-test")
