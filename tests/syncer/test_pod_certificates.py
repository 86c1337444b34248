"""podCertificate projections: the syncer does a kubelet's part against the vcluster.

The pure rules here (the request a kubelet would send, the host pod's volume, the files
of an issued certificate); on the real node, a signer playing the vcluster's (this test)
issues the request and the pod reads its key and chain, while the host never sees a
request and its signers are never asked.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from kubernetes import client

from controlplane.pki import new_ca
from localkube.testing import kubectl
from syncer import kinds, names
from syncer.controller import SyncContext
from syncer.kinds.pods.controller import PodController
from syncer.kinds.pods import podcertificates
from syncer.kinds.pods import translate as pods
from syncer.kube import PODS, SECRETS
from syncer.translate import Target
from tests.kube.helpers import busybox_pod, eventually

TARGET = Target(vcluster="vc", namespace="host-ns")
SIGNER = "example.com/mesh"
PROJECTION = {"signerName": SIGNER, "keyType": "ED25519", "credentialBundlePath": "bundle.pem",
              "keyPath": "key.pem", "certificateChainPath": "chain.pem", "userAnnotations": {"example.com/role": "web"}}


def certificate_pod(*projections: dict) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"}, "spec": {
        "serviceAccountName": "builder", "containers": [{"name": "app", "image": "app:1"}],
        "volumes": [{"name": "id", "projected": {"sources": [
            {"configMap": {"name": "settings"}}, *({"podCertificate": p} for p in projections)]}}]}}


def test_each_projection_is_one_request_whose_files_are_items_of_the_certificate_secret():
    pod = certificate_pod(PROJECTION, {"signerName": SIGNER, "keyType": "RSA3072", "credentialBundlePath": "b.pem"})
    sources = podcertificates.certificate_sources(pod)
    assert [(s.key, s.volume, s.index) for s in sources] == [("cert-0", "id", 1), ("cert-1", "id", 2)]
    projected = pods.host_pod(pod, TARGET, None, certificates="certs")["spec"]["volumes"][0]["projected"]["sources"]
    assert projected[1:] == [
        {"secret": {"name": "certs", "items": [{"key": "cert-0-bundle", "path": "bundle.pem"},
                                               {"key": "cert-0-key", "path": "key.pem"},
                                               {"key": "cert-0-chain", "path": "chain.pem"}]}},
        {"secret": {"name": "certs", "items": [{"key": "cert-1-bundle", "path": "b.pem"}]}},
    ]
    with pytest.raises(ValueError):
        pods.host_pod(pod, TARGET, None)


def test_the_request_names_the_pod_its_account_and_node_as_a_kubelets_does():
    pod = certificate_pod(PROJECTION)
    key_pem, stub = podcertificates.new_key("ED25519")
    node = {"metadata": {"name": "realnode-0", "uid": "node-uid"}}
    body = podcertificates.request_body(pod, podcertificates.certificate_sources(pod)[0], stub, "sa-uid", node)
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"}]
    assert body["spec"] == {
        "signerName": SIGNER, "podName": "web", "podUID": "pod-uid", "serviceAccountName": "builder",
        "serviceAccountUID": "sa-uid", "nodeName": "realnode-0", "nodeUID": "node-uid",
        "stubPKCS10Request": base64.b64encode(stub).decode(), "unverifiedUserAnnotations": {"example.com/role": "web"}}
    request = x509.load_der_x509_csr(stub)
    assert request.is_signature_valid and request.public_key() == serialization.load_pem_private_key(
        key_pem, None).public_key()


def test_an_issued_chain_is_cleaned_and_the_bundle_is_the_key_then_the_chain():
    ca = new_ca("mesh").cert_pem.decode()
    answer = podcertificates.outcome({"status": {"conditions": [{"type": "Issued"}],
                                                 "certificateChain": "junk\n" + ca}})
    assert answer == ("Issued", ca)
    files = podcertificates.files(podcertificates.certificate_sources(certificate_pod(PROJECTION))[0], b"KEY\n", ca)
    assert base64.b64decode(files["cert-0-bundle"]).decode() == "KEY\n" + ca
    assert podcertificates.outcome({"status": {"conditions": [{"type": "Denied", "reason": "NoWay",
                                                               "message": "not you"}]}}) == ("Denied", "NoWay: not you")
    assert podcertificates.outcome({"status": {}}) is None


# On the real node -------------------------------------------------------------

GROUP, VERSION, PLURAL = "certificates.k8s.io", "v1", "podcertificaterequests"


def issue(api: client.ApiClient, request: dict, ca_cert: x509.Certificate, ca_key) -> None:
    """What the signer of SIGNER does: a two-hour certificate for the requested key."""
    public_key = x509.load_der_x509_csr(base64.b64decode(request["spec"]["stubPKCS10Request"])).public_key()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    spiffe = f"spiffe://cluster.local/ns/default/sa/{request['spec']['serviceAccountName']}"
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")]))
            .issuer_name(ca_cert.subject).public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, request["metadata"]["namespace"], PLURAL, request["metadata"]["name"], {"status": {
            "conditions": [{"type": "Issued", "status": "True", "reason": "Issued", "message": "issued by the test",
                            "lastTransitionTime": stamp(now)}],
            "certificateChain": chain.decode(), "notBefore": stamp(now),
            "beginRefreshAt": stamp(now + dt.timedelta(hours=1)), "notAfter": stamp(now + dt.timedelta(hours=2))}})


@pytest.mark.kube
@pytest.mark.realnode
def test_a_pod_gets_its_certificate_from_the_vclusters_signer_and_the_host_never_sees_a_request(
        make_real_vcluster, real_host_cluster):
    vc = make_real_vcluster("podcerts")
    ca = new_ca("vcluster-mesh")
    ca_cert, ca_key = x509.load_pem_x509_certificate(ca.cert_pem), serialization.load_pem_private_key(ca.key_pem, None)
    pod = busybox_pod("web", "sleep 3600")
    pod.spec.volumes = [client.V1Volume(name="id", projected=client.V1ProjectedVolumeSource(sources=[
        {"podCertificate": {**PROJECTION, "keyType": "ECDSAP256"}}]))]
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="id", mount_path="/id")]
    vc.tenant.core.create_namespaced_pod("default", pod)

    custom = client.CustomObjectsApi(vc.tenant.api)
    requests = eventually(lambda: custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"],
                          timeout=60, what="the pod's PodCertificateRequest in the vcluster")
    assert len(requests) == 1 and requests[0]["spec"]["nodeName"] == "realnode-0"
    assert vc.tenant.core.read_namespaced_pod("web", "default").status.phase == "Pending", "no certificate yet"
    issue(vc.tenant.api, requests[0], ca_cert, ca_key)
    eventually(lambda: vc.tenant.core.read_namespaced_pod("web", "default").status.phase == "Running", timeout=120,
               what="the pod Running once its certificate is issued")

    read = lambda path: kubectl(vc.kubeconfig, "exec", "web", "--", "cat", f"/id/{path}").stdout  # noqa: E731
    key = serialization.load_pem_private_key(read("key.pem").encode(), None)
    leaf = x509.load_pem_x509_certificates(read("chain.pem").encode())
    assert leaf[0].public_key() == key.public_key() and leaf[1] == ca_cert
    assert read("bundle.pem") == read("key.pem") + read("chain.pem")

    host_requests = client.CustomObjectsApi(real_host_cluster.api_client()).list_namespaced_custom_object(
        GROUP, VERSION, vc.host_namespace, PLURAL)["items"]
    assert host_requests == [], "the host's signers are never asked"
    host_pod = vc.operator.core.read_namespaced_pod(vc.host_name("web"), vc.host_namespace)
    assert all(s.pod_certificate is None for s in host_pod.spec.volumes[0].projected.sources)
    secret = vc.operator.core.read_namespaced_secret(names.certificates_name(host_pod.metadata.name),
                                                     vc.host_namespace)
    assert secret.metadata.owner_references[0].uid == host_pod.metadata.uid, "goes with the host pod"


class Recorder:
    def __init__(self):
        self.warnings = []

    def warn(self, obj, kind, reason, message):
        self.warnings.append(reason)


class ForeignSecretHost:
    """A host whose Secret of the pod's certificate name belongs to someone else; records writes."""

    def __init__(self):
        self.writes = []

    def get_or_none(self, resource, namespace, name):
        return {"metadata": {"name": name, "labels": {}, "annotations": {}}, "data": {"theirs": "eA=="}}

    def create(self, resource, namespace, obj, **kwargs):
        self.writes.append(("create", obj))
        return {**obj, "metadata": {**obj.get("metadata", {}), "name": "req-1"}}

    def patch(self, *args, **kwargs):
        self.writes.append(("patch", args))

    def get(self, resource, namespace, name):
        return {"metadata": {"name": name, "uid": f"{name}-uid"}}


def test_a_host_secret_of_that_name_that_is_not_ours_is_left_alone():
    host, recorder = ForeignSecretHost(), Recorder()
    ctx = SyncContext(TARGET, host, host, {PODS: {}}, {PODS: {}, SECRETS: {}}, recorder=recorder)
    pods = PodController(ctx, kinds.pods.KIND)
    host_pod = {"metadata": {"name": "web-x-shop-x-vc", "uid": "host-uid"}, "spec": {"nodeName": "node-1"}}
    assert pods._ensure_certificates(certificate_pod(PROJECTION), host_pod) is None
    assert recorder.warnings == ["NameTaken"]
    assert not [w for w in host.writes if w[0] == "patch"], "the foreign Secret is not written"
