"""Kubeconfig files with embedded credentials, as kubectl and the Python client read them."""

from __future__ import annotations

import base64
import yaml

from .pki import KeyPair

# The portal's own cluster-admin user in every cluster it makes (host and vcluster).
ADMIN_USER = "vcportal-admin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(cluster: str, server: str, ca_pem: bytes, client: KeyPair, user: str) -> str:
    context = f"{user}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)

