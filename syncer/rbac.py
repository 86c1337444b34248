"""The host permissions the syncer needs, derived from the registry of kinds, for
provisioning to grant (provisioning.manifests.syncer_identity).

A Role in the host namespace covers exactly the namespaced kinds the syncer watches
there, with the verbs each kind declares (the kinds it writes: no status subresources,
no update, no wildcard; events: read), and the subresources it declares (the pods' log,
exec, attach and portforward, for syncer.kubelet), and reading its pods' metrics
(syncer.metricsapi). A ClusterRole covers the cluster-scoped kinds it
reads (Nodes, to mirror those that run tenant pods; storage, priority and ingress classes,
to mirror those tenants may use). A Role in the namespace of Ingress host-name claims
lets it claim names there (syncer.kinds.ingresses).
"""

from __future__ import annotations

import base64

import yaml

from .kinds import REGISTRY
from .kinds.ingresses import CLAIM_RULES
from .metricsapi import METRICS_RULE

NODE_READER = "vcportal-syncer-node-reader"


def host_rules() -> dict[str, list[dict]]:
    """{"role": rules for a Role in the host namespace, "node_reader": rules for a ClusterRole,
    "host_names": rules for a Role in the namespace of Ingress host-name claims}."""
    on_host = [kind for kind in REGISTRY if kind.host_objects]
    return {
        "role": [*_rules(kind for kind in on_host if kind.resource.namespaced), METRICS_RULE],
        "node_reader": _rules(kind for kind in on_host if not kind.resource.namespaced),
        "host_names": CLAIM_RULES,
    }


def _rules(kinds) -> list[dict]:
    """One rule per API group and set of verbs, in registry order."""
    rules: dict[tuple, dict] = {}
    for kind in kinds:
        group = _api_group(kind.resource.prefix)
        plural = kind.resource.plural
        for resource, verbs in ((plural, kind.host_verbs),
                                *((f"{plural}/{sub}", verbs) for sub, verbs in kind.host_subresources)):
            rule = rules.setdefault((group, verbs), {"apiGroups": [group], "resources": [], "verbs": list(verbs)})
            rule["resources"].append(resource)
    return list(rules.values())


def _api_group(prefix: str) -> str:
    """"/api/v1" → "" (core); "/apis/GROUP/VERSION" → GROUP."""
    parts = prefix.strip("/").split("/")
    return "" if parts[0] == "api" else parts[1]


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

