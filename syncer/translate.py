"""What every kind's translation shares: where objects land, and the host copy's metadata.

Each kind's own rules live in its module under `syncer/kinds/`. Everything here and
there works on plain dicts as the API serves them and never calls a server, so each
rule is unit tested on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from . import names
from .policy import TenantPolicy


class Refused(Exception):
    """A virtual object that cannot be made safe for the host; the message says why."""


class NotOffered(Refused):
    """A pod asking for what this host does not offer: a placement on host node labels, a
    CSI driver or storage class it does not list. Kubernetes accepts a pod no node can
    take, or whose driver or class does not exist, and leaves it Pending, so the pod
    webhook lets it be created and the controller reports it. What Pod Security admission
    would refuse (hostPath and other host volumes), or a runtime class, is refused at
    creation (syncer.admission)."""


@dataclass(frozen=True)
class Target:
    """Where and how a vcluster's objects land on the host."""

    vcluster: str
    namespace: str
    service_account: str = "default"
    # host:port at which host pods reach the vcluster's API server, if anywhere.
    api_endpoint: tuple[str, int] | None = None
    # The vcluster's DNS server as host pods reach it, if it runs one.
    dns_ip: str | None = None
    # host:port at which the vcluster's API server reaches this syncer's kubelet API.
    kubelet_endpoint: tuple[str, int] | None = None
    # What the host cluster lets tenants ask of it beyond the safe default.
    policy: TenantPolicy = field(default_factory=TenantPolicy)
    # The host's default StorageClass, which claims may always name (syncer.kinds.storageclasses).
    default_storage_class: str | None = None
    # (name, value) of the host PriorityClasses tenant pods may use (syncer.kinds.priorityclasses).
    priority_classes: tuple[tuple[str, int], ...] = ()
    # An image with `sh` and `sed` that writes the virtual names into /etc/hosts of pods with
    # a subdomain (syncer.kinds.pods.translate); without one they keep the host's.
    hosts_image: str | None = None
    # The host nodes the vcluster shows as its Nodes (those its pods run on), which a pod
    # may name by `metadata.name`, as a DaemonSet's pods do (syncer.kinds.pods.safety).
    nodes: frozenset[str] = frozenset()

    def name(self, name: str, namespace: str) -> str:
        return names.host_name(name, namespace, self.vcluster)


def age(obj: dict) -> float:
    """Seconds since `obj` was created, by its creationTimestamp; 0 without one."""
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return 0
    return time.time() - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


def host_object(kind: str, virtual: dict, target: Target, **body) -> dict:
    """A namespaced host copy of `virtual`: its host name, the tenant's labels and our marks."""
    meta = virtual["metadata"]
    labels, annotations = names.marks(target.vcluster, kind, virtual)
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": target.name(meta["name"], meta["namespace"]),
            "namespace": target.namespace,
            "labels": {**names.without_reserved(meta.get("labels")), **labels},
            "annotations": annotations,
        },
        **body,
    }


def require_label(selector: dict, key: str, values: list[str]) -> None:
    """Narrow a label selector, in place, to objects whose `key` is one of `values`."""
    expressions = selector.setdefault("matchExpressions", []) or []
    expressions.append({"key": key, "operator": "In", "values": sorted(set(values))})
    selector["matchExpressions"] = expressions


def selector_matches(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`; the
    empty selector selects everything."""
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_term_matches(term, labels) for term in selector.get("matchExpressions") or [])


def _term_matches(term: dict, labels: dict) -> bool:
    key, values = term["key"], term.get("values") or []
    match term["operator"]:
        case "In":
            return labels.get(key) in values
        case "NotIn":
            return labels.get(key) not in values
        case "Exists":
            return key in labels
        case "DoesNotExist":
            return key not in labels
    return False


def scope_selector(selector: dict, namespace: str, vcluster: str) -> None:
    """Narrow a pod selector, in place, to the host pods of one virtual namespace of this
    vcluster: the tenant's own terms can then only narrow it further."""
    require_label(selector, names.LABEL_MANAGED_BY, [vcluster])
    require_label(selector, names.LABEL_NAMESPACE, [namespace])


def labels_differ(desired: dict, actual: dict) -> bool:
    return (desired["metadata"].get("labels") or {}) != (actual["metadata"].get("labels") or {})


def marks_differ(desired: dict, actual: dict) -> bool:
    return labels_differ(desired, actual) or \
        (actual["metadata"].get("annotations") or {}) != desired["metadata"]["annotations"]


def metadata_patch(desired: dict, actual: dict) -> dict:
    """Labels as desired (others removed) and our annotations, for a merge patch."""
    want = desired["metadata"].get("labels") or {}
    have = actual["metadata"].get("labels") or {}
    return {"labels": {**{k: None for k in have if k not in want}, **want},
            "annotations": desired["metadata"]["annotations"]}


def marks_patch(desired: dict, actual: dict) -> dict:
    """{"metadata": …} when the marks differ, else {}: the start of most kinds' patches."""
    return {"metadata": metadata_patch(desired, actual)} if marks_differ(desired, actual) else {}
