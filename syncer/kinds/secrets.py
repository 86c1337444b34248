"""Secrets, vcluster → host, while a virtual pod refers to them (as ConfigMaps are)."""

from __future__ import annotations

from ..kind import VIRTUAL, Kind, Watch
from ..kube import PODS, SECRETS
from ..translate import Target, host_object
from .configmaps import PodReferenced, referenced_by_pods


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


KIND = Kind(
    name="Secret",
    resource=SECRETS,
    controller=SecretSync,
    watches=(Watch(VIRTUAL, PODS, lambda ctx, old, new: referenced_by_pods(ctx, old, new, "Secret")),),
)
