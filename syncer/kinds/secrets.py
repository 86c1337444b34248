"""Secrets, vcluster → host, while a virtual pod refers to them (as ConfigMaps are)."""

from __future__ import annotations

from ..kube import SECRETS
from ..translate import Target, host_object
from .configmaps import PodReferenced, pod_referenced


def host_secret(secret: dict, target: Target) -> dict:
    # A service-account-token Secret on the host would be checked (and deleted) by the
    # host's token controller against host ServiceAccounts: copy it as Opaque.
    kind = secret.get("type") or "Opaque"
    if kind == "kubernetes.io/service-account-token":
        kind = "Opaque"
    fields = {k: secret[k] for k in ("data", "immutable") if k in secret}
    return host_object("Secret", secret, target, type=kind, **fields)


class SecretSync(PodReferenced):
    def to_host(self, virtual: dict) -> dict:
        return host_secret(virtual, self.ctx.target)


KIND = pod_referenced("Secret", SECRETS, SecretSync)
