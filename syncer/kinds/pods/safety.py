"""What a tenant pod may ask of the host: volumes and scheduling. Pure functions.

The host's Pod Security level is not enough on its own: under `baseline`, network and
cloud volumes pass, inline CSI and generic ephemeral volumes pass even under
`restricted`, and tolerations, node selectors and runtime classes reach host nodes the
tenant has no business on. So the syncer allows only what a tenant needs, plus what the
host cluster's TenantPolicy lists, and refuses the rest (Refused becomes the
`HostRefused` event on the virtual pod):

- volumes: configMap, secret, emptyDir, downwardAPI, persistentVolumeClaim (of the same
  vcluster), projected with configMap/secret/downwardAPI sources, and serviceAccountToken,
  clusterTrustBundle and podCertificate sources (the syncer fills them from the vcluster), generic
  ephemeral volumes whose claim template is sanitised like a claim, image volumes (an
  image, pulled as the pod's containers' images are), and csi with a driver the policy
  lists. Anything else (hostPath, nfs, iscsi, rbd, cephfs, flexVolume, cloud disks,
  gitRepo …) is refused.
- tolerations the policy does not list are stripped, not refused: the vcluster's API
  server adds the default not-ready/unreachable tolerations to every pod, and a
  toleration only widens where a pod may go, so removing it never makes a pod unsafe.
- node selectors and required node affinity on keys the policy does not list are
  refused (the tenant asked for a placement the host will not give); preferred node
  affinity terms on such keys are stripped (a preference is not a promise). A required
  term naming nodes by `metadata.name` passes when every node it names is one the
  vcluster shows, i.e. one its pods already run on: a DaemonSet's pods are pinned so,
  and that picks no node the tenant is not on already.
- a runtimeClassName the policy does not list is refused.

What Pod Security admission would refuse, and runtime classes, are Refused outright (the
pod webhook refuses the create); what the host merely does not offer (a CSI driver, a
storage class, a placement) is NotOffered: Kubernetes accepts such a pod and leaves it
Pending, and so does the webhook.
"""

from __future__ import annotations

import copy

from ... import names
from ...names import LABEL_MANAGED_BY, LABEL_NAMESPACE
from ...policy import TenantPolicy
from ...translate import NotOffered, Refused, Target

VOLUME_SOURCES = {"configMap", "secret", "emptyDir", "downwardAPI", "projected", "persistentVolumeClaim",
                  "ephemeral", "csi", "image"}
PROJECTED_SOURCES = {"configMap", "secret", "downwardAPI", "serviceAccountToken", "clusterTrustBundle",
                     "podCertificate"}
NODE_NAME = "metadata.name"  # the one field a node selector term may match
# The parts of a claim spec a tenant decides; the rest (volumeName, selector) would
# choose host volumes.
CLAIM_FIELDS = ("accessModes", "resources", "storageClassName", "volumeMode", "volumeAttributesClassName")


def check_pod(spec: dict, policy: TenantPolicy) -> None:
    """Volume kinds and projected sources the syncer does not allow, and runtime classes
    the policy does not list, refused outright; then CSI drivers it does not list
    (NotOffered), so a pod with both is refused outright."""
    for volume in spec.get("volumes") or []:
        name = volume.get("name")
        unknown = set(volume) - {"name"} - VOLUME_SOURCES
        if unknown:
            raise Refused(f"volume {name!r}: {', '.join(sorted(unknown))} volumes are not allowed")
        for source in (volume.get("projected") or {}).get("sources") or []:
            kinds = set(source) - PROJECTED_SOURCES
            if kinds:
                raise Refused(f"volume {name!r}: projected {', '.join(sorted(kinds))} sources are not allowed")
    runtime_class = spec.get("runtimeClassName")
    if runtime_class and runtime_class not in policy.runtime_classes:
        raise Refused(f"runtimeClassName {runtime_class!r} is not allowed on this host cluster")
    for volume in spec.get("volumes") or []:
        csi = volume.get("csi")
        if csi is not None and csi.get("driver") not in policy.csi_drivers:
            raise NotOffered(f"volume {volume.get('name')!r}: CSI driver {csi.get('driver')!r} is not allowed "
                             f"on this host cluster")


def may_refuse_cel() -> str:
    """A CEL expression over a Pod (`object`), true when check_pod might refuse it outright:
    the pod webhook's match condition (syncer.admission), made from the lists check_pod
    reads, so the pods tenants usually make never wait on a call to the syncer."""
    def none_of(var: str, fields: set[str]) -> str:
        return "!(" + " || ".join(f"has({var}.{field})" for field in sorted(fields)) + ")"

    projected = (f"has(v.projected) && has(v.projected.sources) && "
                 f"v.projected.sources.exists(s, {none_of('s', PROJECTED_SOURCES)})")
    return (f"has(object.spec.runtimeClassName) || (has(object.spec.volumes) && "
            f"object.spec.volumes.exists(v, {none_of('v', VOLUME_SOURCES)} || ({projected})))")


def check_storage_class(spec: dict, target: Target) -> None:
    """A claim may leave its class out (the host's default), or name the host's default
    or a class the policy lists; any other, a tenant's own class included, is refused."""
    name = spec.get("storageClassName")
    if name is None or name == target.default_storage_class or name in target.policy.storage_classes:
        return
    raise NotOffered(f"storage class {name!r} is not offered by this host cluster "
                     f"(kubectl get storageclass lists those that are)")


def host_priority_class(spec: dict, target: Target) -> str | None:
    """The host class for a pod: the class it names if the host offers it, else the offered
    class of the highest value not above the pod's priority (None: the host's default)."""
    offered = dict(target.priority_classes)
    name = spec.get("priorityClassName")
    if name in offered:
        return name
    priority = spec.get("priority")
    below = [(value, offer) for offer, value in offered.items() if priority is not None and value <= priority]
    return max(below)[1] if below else None


def claim_spec(spec: dict, namespace: str, target: Target) -> dict:
    """A claim's spec as the host gets it: class and size only; a data source only when it
    is another claim of the same virtual namespace (then its host copy). Refused when its
    class is not offered."""
    check_storage_class(spec, target)
    host = {k: copy.deepcopy(v) for k, v in spec.items() if k in CLAIM_FIELDS}
    source = spec.get("dataSource")
    if source and source.get("kind") == "PersistentVolumeClaim" and not source.get("apiGroup"):
        host["dataSource"] = {"kind": "PersistentVolumeClaim", "name": target.name(source["name"], namespace)}
    return host


def sanitise_ephemeral_volumes(spec: dict, namespace: str, target: Target) -> None:
    """A generic ephemeral volume's claim is created by the host from the template: it
    gets the rules of a synced claim (no volumeName, selector or foreign data source; the
    tenant's labels without our prefix, plus our labels; no annotations)."""
    for volume in spec.get("volumes") or []:
        ephemeral = volume.get("ephemeral")
        if ephemeral is None:
            continue
        template = ephemeral.get("volumeClaimTemplate") or {}
        labels = names.without_reserved((template.get("metadata") or {}).get("labels"))
        volume["ephemeral"] = {"volumeClaimTemplate": {
            "metadata": {"labels": {**labels, LABEL_MANAGED_BY: target.vcluster, LABEL_NAMESPACE: namespace}},
            "spec": claim_spec(template.get("spec") or {}, namespace, target),
        }}


def confine_scheduling(spec: dict, policy: TenantPolicy, shown_nodes: frozenset[str] = frozenset()) -> None:
    tolerations = [t for t in spec.get("tolerations") or [] if policy.allows_toleration(t)]
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)
    allowed = set(policy.node_label_keys)
    refused = sorted(set(spec.get("nodeSelector") or {}) - allowed)
    if refused:
        raise NotOffered(f"nodeSelector on host node labels {', '.join(refused)} is not allowed")
    _confine_node_affinity(spec, allowed, shown_nodes)


def _confine_node_affinity(spec: dict, allowed: set[str], shown_nodes: frozenset[str]) -> None:
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity")
    if not node_affinity:
        return
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        refused = sorted(_term_keys(term) - allowed - ({NODE_NAME} if _names_shown_nodes(term, shown_nodes) else set()))
        if refused:
            raise NotOffered(f"node affinity on host node labels {', '.join(refused)} is not allowed")
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    if preferred:
        kept = [p for p in preferred if _term_keys(p.get("preference") or {}) <= allowed]
        if kept:
            node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = kept
        else:
            del node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]


def _names_shown_nodes(term: dict, shown_nodes: frozenset[str]) -> bool:
    """Whether the term's fields only pick nodes by name among `shown_nodes`."""
    fields = term.get("matchFields") or []
    return bool(fields) and all(f.get("key") == NODE_NAME and f.get("operator") == "In"
                                and set(f.get("values") or []) <= shown_nodes for f in fields)


def _term_keys(term: dict) -> set[str]:
    """The node labels (and fields, such as metadata.name) a node selector term reads."""
    return {e.get("key") for e in [*(term.get("matchExpressions") or []), *(term.get("matchFields") or [])]}
