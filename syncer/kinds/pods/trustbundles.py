"""ClusterTrustBundle projections: the vcluster's trust bundles in a pod's volume. Pure functions.

A kubelet fills a `clusterTrustBundle` projection from the ClusterTrustBundles of its
own cluster, so the host's kubelet would read the host's. The syncer resolves each one
from the vcluster's bundles instead, as the kubelet does (by name, or by signer name and
label selector: a missing selector matches nothing, an empty one everything; the
certificates deduplicated and written back as PEM), into a host ConfigMap owned by the
host pod, and the host pod mounts that ConfigMap's key in its place
(`translate._mount_trust_bundles_from_configmap`). A projection that
finds nothing is an empty file when optional; otherwise its key is left out, so the
host's kubelet fails the mount and the pod does not start, as it would not on a kubelet.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from ...translate import selector_matches

PEM_BLOCK = re.compile(r"-----BEGIN ([^-\n]+)-----\r?\n(.*?)-----END \1-----", re.S)
PEM_LINE = 64


@dataclass(frozen=True)
class BundleSource:
    """A distinct trust bundle a pod's projected volumes ask for, stored under `key`."""

    key: str
    name: str | None
    signer_name: str | None
    selector: str | None  # the label selector as JSON; None matches nothing
    optional: bool


def bundle_sources(pod: dict) -> list[BundleSource]:
    """The distinct bundles the pod's projected volumes ask for, in a stable order."""
    seen: dict[tuple, BundleSource] = {}
    for projection in _projections(pod.get("spec") or {}):
        wanted = request(projection)
        if wanted not in seen:
            seen[wanted] = BundleSource(f"bundle-{len(seen)}", *wanted)
    return list(seen.values())


def referenced(pod: dict) -> list[str]:
    """"name:<bundle>" and "signer:<signer name>" for each bundle the pod projects (an index)."""
    return sorted({f"name:{s.name}" if s.name is not None else f"signer:{s.signer_name}" for s in bundle_sources(pod)})


def keys_for(bundle: dict) -> list[str]:
    """The index values whose pods a change of `bundle` concerns."""
    keys = [f"name:{bundle['metadata']['name']}"]
    signer = (bundle.get("spec") or {}).get("signerName")
    return [*keys, f"signer:{signer}"] if signer else keys


def configmap_data(sources: list[BundleSource], bundles: list[dict]) -> dict[str, str]:
    """The host ConfigMap's data: each source's PEM, or "" when nothing matched and it is
    optional; a required source that matched nothing has no key."""
    by_name = {b["metadata"]["name"]: b for b in bundles}
    data = {}
    for source in sources:
        if source.name is not None:
            matched = [by_name[source.name]] if source.name in by_name else []
        else:
            matched = [b for b in bundles if (b.get("spec") or {}).get("signerName") == source.signer_name
                       and _selects(source.selector, b)]
        if matched:
            data[source.key] = normalized(matched)
        elif source.optional:
            data[source.key] = ""
    return data


def normalized(bundles: list[dict]) -> str:
    """The bundles' certificates, deduplicated, each as a PEM CERTIFICATE block, in a stable
    order (the kubelet shuffles them once per start; callers must not rely on any order)."""
    unique = {der for bundle in bundles for der in certificates((bundle.get("spec") or {}).get("trustBundle") or "")}
    return "".join(pem(der) for der in sorted(unique))


def certificates(text: str) -> list[bytes]:
    """The DER of each PEM block in `text`, in order, as the kubelet reads them: of any
    block type, skipping what does not decode."""
    found = []
    for _, body in PEM_BLOCK.findall(text):
        try:
            found.append(base64.b64decode("".join(body.split()), validate=True))
        except binascii.Error:
            continue
    return found


def pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + PEM_LINE] for i in range(0, len(body), PEM_LINE)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _projections(spec: dict) -> list[dict]:
    return [source["clusterTrustBundle"] for volume in spec.get("volumes") or []
            for source in (volume.get("projected") or {}).get("sources") or [] if "clusterTrustBundle" in source]


def request(projection: dict) -> tuple:
    """What a projection asks for, as the fields of its BundleSource after the key."""
    optional = bool(projection.get("optional"))
    if projection.get("name") is not None:
        return projection["name"], None, None, optional
    selector = projection.get("labelSelector")
    return None, projection.get("signerName"), None if selector is None else json.dumps(selector, sort_keys=True), optional


def _selects(selector: str | None, bundle: dict) -> bool:
    return selector is not None and selector_matches(json.loads(selector), bundle["metadata"].get("labels") or {})
