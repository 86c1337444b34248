"""Host names for virtual objects, and the marks that record the mapping.

A virtual object NAME in NAMESPACE of vcluster VC becomes `NAME-x-NAMESPACE-x-VC` in the
host namespace. When that is longer than 63 characters (the DNS-1123 label limit that
Services need; every kind uses it so one rule covers all), or when a part could blur
into the `-x-` separators (`a-x` + `b` and `a` + `x-b` would both give `a-x-x-b-x-VC`),
it is cut and ends with a stable hash of the three parts instead: 64 bits of SHA-256,
so that no tenant can choose a head and search for a name that collides with another
object's (40 bits, as before, could be forced in about 2^40 tries).

The way back is never parsed out of a host name: every host object carries annotations
naming its virtual object, and labels saying which vcluster owns it.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
HASH_LEN = 16  # hex digits: 64 bits

PREFIX = "vcportal.io/"
FIELD_MANAGER = "vcportal-syncer"  # its server-side applies in the vcluster
LABEL_MANAGED_BY = PREFIX + "managed-by"
LABEL_NAMESPACE = PREFIX + "virtual-namespace"
ANN_NAME = PREFIX + "object-name"
ANN_NAMESPACE = PREFIX + "object-namespace"
ANN_UID = PREFIX + "object-uid"
ANN_KIND = PREFIX + "object-kind"
ANN_SERVICE_ACCOUNT = PREFIX + "service-account-name"
# The kinds recorded on the Secret that holds a pod's service-account tokens, on the
# ConfigMap that holds the trust bundles it projects, and on the Secret of its certificates.
TOKEN_KIND = "ServiceAccountToken"
TRUST_BUNDLES_KIND = "ClusterTrustBundles"
CERTIFICATES_KIND = "PodCertificates"


SEPARATOR = "-x-"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LEN]


def host_name(name: str, namespace: str, vcluster: str) -> str:
    parts = (name, namespace, vcluster)
    joined = SEPARATOR.join(parts)
    if len(joined) <= MAX_NAME and all(_readable(p) for p in parts):
        return joined
    head = joined[: MAX_NAME - HASH_LEN - 1].rstrip("-.")
    return f"{head}-{digest('/'.join(parts))}"  # "/" occurs in no name: one input, one hash


def _readable(part: str) -> bool:
    """True if `part` cannot merge with a separator, so the joined name splits one way only."""
    return SEPARATOR not in part and not part.startswith("x-") and not part.endswith("-x") and part != "x"


def token_secret_name(host_pod_name: str) -> str:
    """The Secret holding a host pod's tokens."""
    return _companion_name(host_pod_name, "token")


def trust_bundles_name(host_pod_name: str) -> str:
    """The ConfigMap holding the vcluster's trust bundles a host pod projects."""
    return _companion_name(host_pod_name, "bundles")


def certificates_name(host_pod_name: str) -> str:
    """The Secret holding the keys and certificates a host pod projects."""
    return _companion_name(host_pod_name, "certs")


def _companion_name(host_pod_name: str, what: str) -> str:
    """Always hashed and ending in `-<what>-<hash>`, which no `…-x-VC` name has, so it
    cannot take the name of a synced object."""
    head = host_pod_name[: MAX_NAME - HASH_LEN - len(what) - 2].rstrip("-.")
    return f"{head}-{what}-{digest(host_pod_name)}"


def marks(vcluster: str, kind: str, virtual: dict) -> tuple[dict, dict]:
    """Labels and annotations for the host copy of `virtual` (a virtual object)."""
    meta = virtual["metadata"]
    labels = {LABEL_MANAGED_BY: vcluster, LABEL_NAMESPACE: meta["namespace"]}
    annotations = {
        ANN_KIND: kind,
        ANN_NAME: meta["name"],
        ANN_NAMESPACE: meta["namespace"],
        ANN_UID: meta.get("uid", ""),
    }
    return labels, annotations


def is_ours(host: dict, vcluster: str) -> bool:
    meta = host.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return labels.get(LABEL_MANAGED_BY) == vcluster and ANN_NAME in annotations and ANN_NAMESPACE in annotations


def recorded_kind(host: dict) -> str:
    return ((host.get("metadata") or {}).get("annotations") or {}).get(ANN_KIND, "")


def recorded_key(host: dict) -> str:
    """`namespace/name` of the virtual object a host object of ours stands for."""
    annotations = host["metadata"]["annotations"]
    return f"{annotations[ANN_NAMESPACE]}/{annotations[ANN_NAME]}"


def recorded_uid(host: dict) -> str:
    return host["metadata"]["annotations"].get(ANN_UID, "")


def without_reserved(mapping: dict | None) -> dict:
    """Tenant labels or annotations minus keys under our prefix, which only the syncer sets."""
    return {k: v for k, v in (mapping or {}).items() if not k.startswith(PREFIX)}
