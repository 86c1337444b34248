"""The host permissions the syncer needs, for provisioning to grant (and tests to use).

A Role in the host namespace covers exactly the kinds the syncer writes there, plus
reading events. Pod status is never written on the host. A ClusterRole lets it read
Nodes, to mirror those that run tenant pods.
"""

from __future__ import annotations

WRITE = ["get", "list", "watch", "create", "patch", "delete"]
READ = ["get", "list", "watch"]


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
