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
        "users": [_user(user, client)],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)



def webhook_credentials(client: KeyPair) -> str:
    """The client certificate an API server presents to its admission webhooks
    (components.admission_configuration): a kubeconfig of users only, named by the
    webhook host each is for; "*" is every host. The API server proves it holds the key
    without giving it away, so a webhook server learns nothing it could use elsewhere."""
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [_user("*", client)]}, sort_keys=False)


def _user(name: str, client: KeyPair) -> dict:
    return {"name": name, "user": {"client-certificate-data": _b64(client.cert_pem),
                                   "client-key-data": _b64(client.key_pem)}}
