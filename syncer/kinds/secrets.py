"""Secrets, vcluster → host, while a virtual pod refers to them (as ConfigMaps are) or an
Ingress names them for TLS (the host's ingress controller reads them there)."""

from __future__ import annotations

import dataclasses

from ..kind import VIRTUAL, Watch
from ..kube import INGRESSES, SECRETS
from ..translate import Target, host_object
from .configmaps import PodReferenced, pod_referenced
from .ingresses import TLS_INDEX, tls_secrets


def host_secret(secret: dict, target: Target) -> dict:
    # A service-account-token Secret on the host would be checked (and deleted) by the
    # host's token controller against host ServiceAccounts: copy it as Opaque.
    kind = secret.get("type") or "Opaque"
    if kind == "kubernetes.io/service-account-token":
        kind = "Opaque"
    fields = {k: secret[k] for k in ("data", "immutable") if k in secret}
    return host_object("Secret", secret, target, type=kind, **fields)


class SecretSync(PodReferenced):
    def keys(self):
        return {*super().keys(), *self.ctx.vinf[INGRESSES].index_values(TLS_INDEX)}

    def wanted(self, key: str) -> dict | None:
        if self.ctx.vinf[INGRESSES].by_index(TLS_INDEX, key):
            return self.ctx.vinf[SECRETS].get(key)
        return super().wanted(key)

    def to_host(self, virtual: dict) -> dict:
        return host_secret(virtual, self.ctx.target)


def _named_for_tls(ctx, old: dict | None, new: dict | None) -> list[str]:
    return sorted({*(tls_secrets(old) if old else ()), *(tls_secrets(new) if new else ())})


_BY_PODS = pod_referenced("Secret", SECRETS, SecretSync)
KIND = dataclasses.replace(_BY_PODS, watches=(*_BY_PODS.watches, Watch(VIRTUAL, INGRESSES, _named_for_tls)))
