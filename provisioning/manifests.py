"""The host objects of one vcluster, as plain manifests: pure functions, unit tested.

Every object carries ownership marks: managed-by vcportal, the vcluster's database id,
and the portal installation's name (so two portals can share a host cluster).
Provisioning writes with server-side apply and force, which would take over any object
of the same name, so it first checks that an existing object already carries the
marks it is about to write (`ownership_conflict`) and refuses otherwise.
"""

from __future__ import annotations

import copy
import secrets
import string

from accounts import resources
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from syncer.kinds.networkpolicies import ISOLATED, PUBLIC
from syncer.kinds.ingresses import LABEL_HOLDER as CLAIM_HOLDER
from syncer.rbac import NODE_READER, host_rules

MAX_NAME = 63
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_LABEL: "vcportal"}
VCLUSTER_LABEL = "vcportal.io/vcluster-id"
INSTALLATION_LABEL = "vcportal.io/installation"
TEAM_LABEL = "vcportal.io/team"
OWNERSHIP_LABELS = (MANAGED_BY_LABEL, VCLUSTER_LABEL, INSTALLATION_LABEL)
SYNCER = "vcportal-syncer"
# On the namespace of a host ingress controller: its pods may reach tenant pods (the
# backends of tenants' Ingresses, syncer.kinds.ingresses).
INGRESS_CONTROLLER_LABEL = "vcportal.io/ingress-controller"
# Per-container defaults where a pod names none; the quota requires them. CPU is shared
# as Kubernetes shares it: the quota caps CPU requests, the share the kernel guarantees
# each container when CPU is contended. So no default CPU limit (a container without one
# may use CPU nobody else is using), and a default request of 1m, whose cgroup weight is
# the one a container without a request gets (cpu.shares 2): asking for nothing is
# guaranteed nothing, as on a cluster of one's own. Conformance tests read both.
CONTAINER_DEFAULT_LIMITS = {"memory": "512Mi", "ephemeral-storage": "512Mi"}
CONTAINER_DEFAULT_REQUESTS = {"cpu": "1m", "memory": "128Mi", "ephemeral-storage": "64Mi"}
# Node-local disk (emptyDir, logs, writable layers) the quota allows per pod, on average.
EPHEMERAL_STORAGE_PER_POD = 2**30
# The vcluster's CoreDNS (the Cluster DNS step) runs in the host namespace beside the
# tenant's pods: the quota makes room for it (its limits, one pod) on top of the team's
# share, so tenants keep all of theirs. Kept in step with localkube.addons by a test.
CLUSTER_DNS_SHARE = {"cpu_millicores": 100, "memory_bytes": 120 * 2**20, "pods": 1}
# What a quota counts of a vcluster and of what runs beside it: the resources a team
# asks for, and the Services that take a node port or load balancer.
SHARE_KEYS = (*(r.field for r in resources.RESOURCES), "nodeports", "loadbalancers")


def add_shares(*shares: dict[str, int]) -> dict[str, int]:
    """The quota's terms (SHARE_KEYS), summed: the team's share and what runs beside it."""
    return {key: sum(share.get(key, 0) for share in shares) for key in SHARE_KEYS}


INSTALLATION_TOKEN_LENGTH = 5


def new_installation_token() -> str:
    """A portal's short token in its host namespaces' names (provisioning.installation):
    a letter, then letters and digits, so never all digits."""
    alphabet = string.ascii_lowercase + string.digits
    rest = "".join(secrets.choice(alphabet) for _ in range(INSTALLATION_TOKEN_LENGTH - 1))
    return secrets.choice(string.ascii_lowercase) + rest


def host_namespace_name(token: str, vcluster_id: int, team_slug: str, vcluster_name: str) -> str:
    """`vc-<token>-<id>-<team>-<vcluster>`. Unique by construction: the portal's token
    is unique on the host (its installation record) and has no '-'; the vcluster's
    database id is all digits and ends at the next '-', so no choice of team or vcluster
    names can produce another vcluster's prefix. And no name of the older form
    `vc-<id>-…` has a token, which starts with a letter, where the id was. The team and
    vcluster names are only there for people to read, so a name too long for a label
    is simply cut."""
    return f"vc-{token}-{vcluster_id}-{team_slug}-{vcluster_name}"[:MAX_NAME].rstrip("-")


def labels(vcluster_id: int, team_slug: str, installation: str) -> dict[str, str]:
    return {**MANAGED_BY, VCLUSTER_LABEL: str(vcluster_id), INSTALLATION_LABEL: installation, TEAM_LABEL: team_slug}


def ownership_conflict(existing: dict[str, str], wanted: dict[str, str]) -> str | None:
    """Why an object labelled `existing` is not ours to overwrite or delete, given the
    labels `wanted` we would write; None if it is ours. Only the ownership marks count.
    Objects of no single vcluster (the node-reader ClusterRole, the same read-only
    rules for every vcluster and every portal) are everyone's to apply. An object
    without an installation mark was written before the mark existed and is judged by
    the others."""
    if VCLUSTER_LABEL not in wanted:
        return None
    for key in OWNERSHIP_LABELS:
        if existing.get(key) == wanted[key]:
            continue
        if key == INSTALLATION_LABEL and key not in existing:
            continue
        if key not in existing:
            return f"has no {key} label, so it is not vcportal's"
        return f"has {key}={existing[key]}, not {wanted[key]}"
    return None


def selector(vcluster_id: int, installation: str) -> str:
    """Everything this portal wrote for the vcluster (not another portal's vcluster with the same id)."""
    return f"{VCLUSTER_LABEL}={vcluster_id},{INSTALLATION_LABEL}={installation}"


def _meta(name: str, namespace: str | None, owner_labels: dict) -> dict:
    meta = {"name": name, "labels": owner_labels}
    if namespace:
        meta["namespace"] = namespace
    return meta


def namespace(name: str, owner_labels: dict, pod_security: str) -> dict:
    psa = {f"pod-security.kubernetes.io/{mode}": pod_security for mode in ("enforce", "warn", "audit")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, None, {**owner_labels, **psa})}


def object_counts(pods: int) -> dict[str, str]:
    """How many API objects of each kind the host namespace may hold, from the pods the
    vcluster may run: each Service takes a ClusterIP from the host's range, and every
    object takes room in the host's datastore. Services, their Endpoints and PVCs: one
    per pod, at least 10; ConfigMaps and Secrets: 3 per pod plus 10 (a pod's own
    service-account token Secret, what it mounts, and kube-root-ca.crt)."""
    per_pod = str(max(pods, 10))
    config = str(3 * pods + 10)
    return {
        "count/services": per_pod,
        "count/endpoints": per_pod,
        "count/persistentvolumeclaims": per_pod,
        "count/configmaps": config,
        "count/secrets": config,
    }


def resource_quota(ns: str, owner_labels: dict, *, cpu_millicores: int, memory_bytes: int, storage_bytes: int, pods: int,
                   nodeports: int = 0, loadbalancers: int = 0) -> dict:
    """Tenants get no node ports or load balancers of the host; a pod-based control
    plane's Service may take one (its share)."""
    ephemeral = str(pods * EPHEMERAL_STORAGE_PER_POD)
    hard = {
        "requests.cpu": f"{cpu_millicores}m",
        "requests.memory": str(memory_bytes),
        "limits.memory": str(memory_bytes),
        "requests.storage": str(storage_bytes),
        "requests.ephemeral-storage": ephemeral,
        "limits.ephemeral-storage": ephemeral,
        "pods": str(pods),
        **object_counts(pods),
        "services.nodeports": str(nodeports),
        "services.loadbalancers": str(loadbalancers),
    }
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("vcluster", ns, owner_labels), "spec": {"hard": hard}}


def limit_range(ns: str, owner_labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta("vcluster", ns, owner_labels),
        "spec": {
            "limits": [
                {"type": "Container", "default": CONTAINER_DEFAULT_LIMITS, "defaultRequest": CONTAINER_DEFAULT_REQUESTS}
            ]
        },
    }


def network_policies(ns: str, owner_labels: dict) -> list[dict]:
    """Ingress only from the same namespace and from the host's ingress controllers (pods
    in namespaces labelled INGRESS_CONTROLLER_LABEL, which only the host's operator can
    label); egress to the same namespace and the public internet; pods a tenant's own
    NetworkPolicy isolates get only what its policies allow, within this. Not to the host's
    cluster DNS: every vcluster runs its own CoreDNS in its namespace (the Cluster DNS
    step), and the host's would tell a tenant the names of every other namespace's
    Services. They need a CNI that enforces NetworkPolicy."""
    same_namespace = [{"podSelector": {}}]
    controllers = [{"namespaceSelector": {"matchLabels": {INGRESS_CONTROLLER_LABEL: "true"}}}]
    public = {"to": [copy.deepcopy(PUBLIC)]}

    def policy(name: str, pods: dict, kind: str, rules: list[dict]) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, ns, owner_labels),
                "spec": {"podSelector": pods, "policyTypes": [kind], kind.lower(): rules}}

    # Pods a tenant's own policy isolates get what its policies allow instead (syncer.kinds.networkpolicies).
    def not_isolated(kind: str) -> dict:
        return {"matchExpressions": [{"key": ISOLATED[kind], "operator": "DoesNotExist"}]}

    return [
        policy("vcluster-ingress", not_isolated("Ingress"), "Ingress", [{"from": same_namespace}]),
        policy("vcluster-ingress-controllers", {}, "Ingress", [{"from": controllers}]),
        policy("vcluster-egress", not_isolated("Egress"), "Egress", [{"to": same_namespace}, public]),
    ]


def api_access_policy(ns: str, owner_labels: dict, address: str, port: int) -> dict:
    """Egress from the vcluster's pods to its own API server, where the runtime says
    they reach it (`kubernetes.default` inside). Needed when that address is outside
    the namespace (the local runtime's published port); one address and port, so no
    tenant reaches another's API server."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("vcluster-api", ns, owner_labels),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": f"{address}/32"}}], "ports": [{"protocol": "TCP", "port": port}]}],
        },
    }


PORTAL = "vcportal-portal"


def portal_binding(ns: str, owner_labels: dict, cluster_role: str, service_account: str) -> dict:
    """The in-cluster portal's rights in a namespace it created: `cluster_role` (the Helm
    chart's) bound to its own ServiceAccount (`namespace/name`)."""
    account_namespace, _, account = service_account.partition("/")
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(PORTAL, ns, owner_labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    }


HOST_NAMES_ROLE = "vcportal-syncer-host-names"


CLAIMS_POLICY = "vcportal-syncer-host-names"


def claims_setup() -> list[dict]:
    """Where syncers claim Ingress host names for their vclusters (syncer.kinds.ingresses),
    shared by all: the namespace, and an admission policy that lets a syncer create and
    delete there only claims held by its own vcluster (RBAC cannot say which Leases)."""
    admission = "admissionregistration.k8s.io/v1"
    holder = "request.userInfo.username.split(':')[2]"  # system:serviceaccount:<namespace>:<name>
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(CLAIMS_NAMESPACE, None, MANAGED_BY)},
        {"apiVersion": admission, "kind": "ValidatingAdmissionPolicy",
         "metadata": _meta(CLAIMS_POLICY, None, MANAGED_BY),
         "spec": {
             "failurePolicy": "Fail",
             "matchConstraints": {
                 "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CLAIMS_NAMESPACE}},
                 "resourceRules": [{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["*"],
                                    "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["leases"]}]},
             "matchConditions": [{"name": "a-syncer", "expression":
                                  "request.userInfo.username.startsWith('system:serviceaccount:') && "
                                  f"request.userInfo.username.endsWith(':{SYNCER}')"}],
             "variables": [{"name": "claim", "expression": "request.operation == 'DELETE' ? oldObject : object"}],
             "validations": [{
                 "expression": f"variables.claim.spec.?holderIdentity.orValue('') == {holder} && variables.claim"
                               f".metadata.?labels.orValue({{}})[?'{CLAIM_HOLDER}'].orValue('') == {holder}",
                 "message": "a syncer claims and releases host names only for its own vcluster",
                 "reason": "Forbidden"}],
         }},
        {"apiVersion": admission, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": _meta(CLAIMS_POLICY, None, MANAGED_BY),
         "spec": {"policyName": CLAIMS_POLICY, "validationActions": ["Deny"]}},
    ]


def host_name_claims(ns: str, owner_labels: dict) -> list[dict]:
    """The syncer's right to claim host names: a Role in the claims namespace, shared,
    and this vcluster's binding to it there."""
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": rbac, "kind": "Role", "metadata": _meta(HOST_NAMES_ROLE, CLAIMS_NAMESPACE, MANAGED_BY),
         "rules": host_rules()["host_names"]},
        {"apiVersion": rbac, "kind": "RoleBinding",
         "metadata": _meta(node_reader_binding_name(ns), CLAIMS_NAMESPACE, owner_labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": HOST_NAMES_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": SYNCER, "namespace": ns}]},
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
