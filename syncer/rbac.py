"""The host permissions the syncer needs, for provisioning to grant (and tests to use).

A Role in the host namespace covers exactly the kinds the syncer writes there, plus
reading events. Pod status is never written on the host. A ClusterRole lets it read
Nodes, to mirror those that run tenant pods.
"""

from __future__ import annotations

import base64

import yaml

WRITE = ["get", "list", "watch", "create", "patch", "delete"]
READ = ["get", "list", "watch"]
NODE_READER = "vcportal-syncer-node-reader"
RBAC_GROUP = "rbac.authorization.k8s.io"


def host_rules() -> dict[str, list[dict]]:
    """{"role": rules for a Role in the host namespace, "node_reader": rules for a ClusterRole}."""
    return {
        "role": [
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims"],
                "verbs": WRITE,
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": READ},
        ],
        "node_reader": [{"apiGroups": [""], "resources": ["nodes"], "verbs": READ}],
    }


def grant(api_client, namespace: str, account: str) -> None:
    """Create on the host (as its admin, through a `kubernetes` ApiClient) the
    ServiceAccount `account` in `namespace`, bound to a Role with host_rules()["role"]
    there and to the shared node-reader ClusterRole."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    meta = {"name": account, "namespace": namespace}
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    _create(lambda: rbac.create_cluster_role({"metadata": {"name": NODE_READER}, "rules": host_rules()["node_reader"]}))
    core.create_namespaced_service_account(namespace, {"metadata": meta})
    rbac.create_namespaced_role(namespace, {"metadata": meta, "rules": host_rules()["role"]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": meta, "subjects": subject, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": account}})
    rbac.create_cluster_role_binding({
        "metadata": {"name": node_binding_name(namespace, account)}, "subjects": subject,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": NODE_READER}})


def node_binding_name(namespace: str, account: str) -> str:
    return f"{namespace}-{account}"


def token_kubeconfig(api_client, server: str, ca_pem: bytes, namespace: str, account: str,
                     seconds: int = 6 * 3600) -> str:
    """A kubeconfig for `account`, with a token from the TokenRequest API."""
    from kubernetes import client

    request = {"spec": {"audiences": [], "expirationSeconds": seconds}}
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(account, namespace, request)
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "host", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": account, "user": {"token": token.status.token}}],
        "contexts": [{"name": "host", "context": {"cluster": "host", "user": account, "namespace": namespace}}],
        "current-context": "host",
    })


def _create(call) -> None:
    from kubernetes.client.rest import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status != 409:
            raise
