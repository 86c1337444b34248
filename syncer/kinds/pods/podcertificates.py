"""podCertificate projections: a key and certificate from the vcluster's signers. Pure functions.

A kubelet fills a `podCertificate` projection itself: it makes a key of the asked type,
sends a PodCertificateRequest (with a stub PKCS#10 request proving the key, and the pod,
its service account and its node) to its cluster's API, waits for the named signer to
issue it, writes the key and the chain, and asks again from the certificate's
`beginRefreshAt`. The host's kubelet would ask the host's signers, so the syncer does the
kubelet's part against the vcluster (`PodController._ensure_certificates`): the
key and chain go into a host Secret owned by the host pod, and the host pod mounts its
items in the projection's place (`translate._mount_certificates_from_secret`). Until a
certificate is issued the items are missing, so the pod waits, as on a kubelet.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .trustbundles import certificates, pem

ISSUED, DENIED, FAILED = "Issued", "Denied", "Failed"


@dataclass(frozen=True)
class CertificateSource:
    """One podCertificate projection (the kubelet asks once per volume and source), its
    files stored under `key`-bundle, `key`-key and `key`-chain."""

    key: str
    volume: str
    index: int
    projection: dict

    def item_keys(self) -> dict[str, str]:
        """The projection's paths → the Secret keys they mount."""
        wanted = (("credentialBundlePath", "bundle"), ("keyPath", "key"), ("certificateChainPath", "chain"))
        return {self.projection[field]: f"{self.key}-{part}" for field, part in wanted if self.projection.get(field)}


def certificate_sources(pod: dict) -> list[CertificateSource]:
    found = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for index, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            if "podCertificate" in source:
                found.append(CertificateSource(f"cert-{len(found)}", volume["name"], index, source["podCertificate"]))
    return found


def new_key(key_type: str) -> tuple[bytes, bytes]:
    """(PKCS#8 PEM of a new key of `key_type`, the DER of a stub PKCS#10 request it signs).
    cryptography is imported here, the first time a pod asks: the syncer needs it for
    nothing else."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = {
        "RSA3072": lambda: rsa.generate_private_key(65537, 3072),
        "RSA4096": lambda: rsa.generate_private_key(65537, 4096),
        "ECDSAP256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ECDSAP384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ECDSAP521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ED25519": ed25519.Ed25519PrivateKey.generate,
    }[key_type]()
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, algorithm)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, request.public_bytes(serialization.Encoding.DER)


def request_body(vpod: dict, source: CertificateSource, stub_request: bytes, account_uid: str,
                 node: dict) -> dict:
    """The PodCertificateRequest a kubelet would send for `source`, owned by the pod."""
    meta = vpod["metadata"]
    projection = source.projection
    spec = {
        "signerName": projection["signerName"],
        "podName": meta["name"], "podUID": meta["uid"],
        "serviceAccountName": vpod["spec"].get("serviceAccountName") or "default", "serviceAccountUID": account_uid,
        "nodeName": node["metadata"]["name"], "nodeUID": node["metadata"]["uid"],
        "stubPKCS10Request": base64.b64encode(stub_request).decode(),
    }
    if projection.get("maxExpirationSeconds") is not None:
        spec["maxExpirationSeconds"] = projection["maxExpirationSeconds"]
    if projection.get("userAnnotations"):
        spec["unverifiedUserAnnotations"] = projection["userAnnotations"]
    return {
        "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"generateName": "req-", "namespace": meta["namespace"], "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}]},
        "spec": spec,
    }


def outcome(request: dict) -> tuple[str, str] | None:
    """(Issued, the chain as clean PEM) or (Denied|Failed, "reason: message"); None while pending."""
    status = request.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == ISSUED:
            return ISSUED, "".join(pem(der) for der in certificates(status.get("certificateChain") or ""))
        if condition.get("type") in (DENIED, FAILED):
            return condition["type"], f"{condition.get('reason', '')}: {condition.get('message', '')}"
    return None


def files(source: CertificateSource, key_pem: bytes, chain: str) -> dict[str, str]:
    """The Secret data (base64) for an issued certificate: the bundle is the key, then the chain."""
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return {f"{source.key}-key": encode(key_pem), f"{source.key}-chain": encode(chain.encode()),
            f"{source.key}-bundle": encode(key_pem + chain.encode())}
