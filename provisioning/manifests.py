"""The host objects of one vcluster, as plain manifests: pure functions, unit tested."""

from __future__ import annotations

import hashlib

from syncer.rbac import NODE_READER, host_rules

MAX_NAME = 63
MANAGED_BY = {"app.kubernetes.io/managed-by": "vcportal"}
VCLUSTER_LABEL = "vcportal.io/vcluster-id"
TEAM_LABEL = "vcportal.io/team"
SYNCER = "vcportal-syncer"
# Addresses tenant pods may not reach: private ranges, link-local (cloud metadata),
# shared address space and loopback.
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8"]
# Per-container defaults where a pod names none; the quota requires them.
CONTAINER_DEFAULTS = {"cpu": "500m", "memory": "512Mi"}
CONTAINER_DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}


def host_namespace_name(team_slug: str, vcluster_name: str) -> str:
    """`vc-<team>-<vcluster>`; when that is too long for a label, cut and suffixed with
    a hash of the whole so two long names never meet."""
    name = f"vc-{team_slug}-{vcluster_name}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:MAX_NAME - 11].rstrip('-')}-{digest}"


def labels(vcluster_id: int, team_slug: str) -> dict[str, str]:
    return {**MANAGED_BY, VCLUSTER_LABEL: str(vcluster_id), TEAM_LABEL: team_slug}


def selector(vcluster_id: int) -> str:
    return f"{VCLUSTER_LABEL}={vcluster_id}"


def _meta(name: str, namespace: str | None, owner_labels: dict) -> dict:
    meta = {"name": name, "labels": owner_labels}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace(name: str, owner_labels: dict, pod_security: str) -> dict:
    psa = {f"pod-security.kubernetes.io/{mode}": pod_security for mode in ("enforce", "warn", "audit")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, None, {**owner_labels, **psa})}


def resource_quota(ns: str, owner_labels: dict, *, cpu_millicores: int, memory_bytes: int, storage_bytes: int, pods: int) -> dict:
    hard = {
        "requests.cpu": f"{cpu_millicores}m",
        "limits.cpu": f"{cpu_millicores}m",
        "requests.memory": str(memory_bytes),
        "limits.memory": str(memory_bytes),
        "requests.storage": str(storage_bytes),
        "pods": str(pods),
        "services.nodeports": "0",
        "services.loadbalancers": "0",
    }
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("vcluster", ns, owner_labels), "spec": {"hard": hard}}


def limit_range(ns: str, owner_labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta("vcluster", ns, owner_labels),
        "spec": {
            "limits": [
                {"type": "Container", "default": CONTAINER_DEFAULTS, "defaultRequest": CONTAINER_DEFAULT_REQUESTS}
            ]
        },
    }


def network_policies(ns: str, owner_labels: dict) -> list[dict]:
    """Ingress only from the same namespace; egress to the same namespace, cluster
    DNS, and the public internet. They need a CNI that enforces NetworkPolicy."""
    same_namespace = [{"podSelector": {}}]
    dns = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    public = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("vcluster-ingress", ns, owner_labels),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": same_namespace}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("vcluster-egress", ns, owner_labels),
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": same_namespace}, dns, public]},
        },
    ]


def node_reader_binding_name(ns: str) -> str:
    return f"{SYNCER}-{ns}"[:253]


def syncer_identity(ns: str, owner_labels: dict) -> list[dict]:
    """The syncer's ServiceAccount, a Role limited to its namespace and to the kinds it
    writes, and read access to Nodes (shared ClusterRole, one binding per vcluster)."""
    rules = host_rules()
    subject = [{"kind": "ServiceAccount", "name": SYNCER, "namespace": ns}]
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SYNCER, ns, owner_labels), "automountServiceAccountToken": False},
        {"apiVersion": rbac, "kind": "Role", "metadata": _meta(SYNCER, ns, owner_labels), "rules": rules["role"]},
        {
            "apiVersion": rbac, "kind": "RoleBinding", "metadata": _meta(SYNCER, ns, owner_labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SYNCER},
            "subjects": subject,
        },
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": _meta(NODE_READER, None, MANAGED_BY), "rules": rules["node_reader"]},
        {
            "apiVersion": rbac, "kind": "ClusterRoleBinding",
            "metadata": _meta(node_reader_binding_name(ns), None, owner_labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NODE_READER},
            "subjects": subject,
        },
    ]
