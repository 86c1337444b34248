"""Who may do what inside a vcluster: four ClusterRoleBindings, one per portal role
group, and nothing else; the provisioning step "Access bindings" applies them. The
gateway (which imports this; provisioning knows nothing of it) impersonates `vcportal:<username>` in the groups
`vcportal:team:<slug>` and `vcportal:role:<role>`; these bindings give the role groups
their rights inside. Platform admins who are not members of the team come in as
`vcportal:role:platform-admin`, bound to cluster-admin like team admins and members."""

import time

from .hostkube import HostKube

GROUP_PREFIX = "vcportal:role:"
PLATFORM_ADMIN = "platform-admin"
ROLE_CLUSTER_ROLES = {
    "admin": "cluster-admin",
    "member": "cluster-admin",
    "viewer": "view",
    PLATFORM_ADMIN: "cluster-admin",
}
MANAGED_LABEL = {"app.kubernetes.io/managed-by": "vcportal-gateway"}
CLUSTER_ROLE_BINDING = ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
# `view` is aggregated by the controller manager a few seconds after a control plane
# starts; until then it grants nothing.
AGGREGATION_TIMEOUT = 30


class ViewRoleNotReady(RuntimeError):
    pass


def role_group(role: str) -> str:
    return GROUP_PREFIX + role


def access_bindings() -> list[dict]:
    return [
        {
            "apiVersion": CLUSTER_ROLE_BINDING[0],
            "kind": CLUSTER_ROLE_BINDING[1],
            "metadata": {"name": role_group(role), "labels": dict(MANAGED_LABEL)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": role_group(role)}],
        }
        for role, cluster_role in ROLE_CLUSTER_ROLES.items()
    ]


def ensure_access_bindings(kubeconfig_text: str) -> list[str]:
    """Apply the bindings inside the vcluster (admin kubeconfig) and remove any other
    binding of ours; returns what changed. Idempotent: a provisioning step. Returns
    once viewers can read (ViewRoleNotReady after AGGREGATION_TIMEOUT seconds)."""
    kube = HostKube(kubeconfig_text)
    _wait_for_view_rules(kube)
    changes = []
    wanted = access_bindings()
    for manifest in wanted:
        if kube.apply(manifest):
            changes.append(f"ClusterRoleBinding {manifest['metadata']['name']}")
    names = {m["metadata"]["name"] for m in wanted}
    resource = kube.dynamic.resources.get(api_version=CLUSTER_ROLE_BINDING[0], kind=CLUSTER_ROLE_BINDING[1])
    selector = ",".join(f"{k}={v}" for k, v in MANAGED_LABEL.items())
    for item in resource.get(label_selector=selector).items:
        if item.metadata.name not in names and kube.delete(*CLUSTER_ROLE_BINDING, item.metadata.name):
            changes.append(f"removed ClusterRoleBinding {item.metadata.name}")
    return changes


def _wait_for_view_rules(kube: HostKube) -> None:
    cluster_roles = kube.dynamic.resources.get(api_version=CLUSTER_ROLE_BINDING[0], kind="ClusterRole")
    deadline = time.monotonic() + AGGREGATION_TIMEOUT
    while not cluster_roles.get(name="view").rules:
        if time.monotonic() > deadline:
            raise ViewRoleNotReady("the vcluster's `view` ClusterRole has no rules yet (aggregation pending)")
        time.sleep(0.2)
