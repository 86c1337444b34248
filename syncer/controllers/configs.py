"""ConfigMaps and Secrets: copied to the host while a virtual pod refers to them.

Copies follow their virtual object (data, labels) and are deleted once no virtual pod
needs them or the virtual object is gone. Everything else in the vcluster stays there.
"""

from __future__ import annotations

from .. import translate
from ..kube import CONFIGMAPS, PODS, SECRETS, Resource
from .base import Context, Controller

KINDS = {CONFIGMAPS: "ConfigMap", SECRETS: "Secret"}
POD_INDEX = {CONFIGMAPS: "configmaps", SECRETS: "secrets"}  # on the virtual pod informer


class ConfigController(Controller):
    def __init__(self, ctx: Context, resource: Resource, workers: int = 2):
        super().__init__(ctx, workers)
        self.resource = resource
        self.kind = KINDS[resource]
        self.name = resource.plural
        self.translate = translate.host_configmap if resource == CONFIGMAPS else translate.host_secret
        self.virtual = ctx.vinf[resource]
        self.hosts = ctx.hinf[resource]
        self.pods = ctx.vinf[PODS]

    def keys(self):
        recorded = self.hosts.index_values("virtual")
        prefix = self.kind + "/"
        return {*self.pods.index_values(POD_INDEX[self.resource]),
                *(v[len(prefix):] for v in recorded if v.startswith(prefix))}

    def needed(self, key: str) -> bool:
        return bool(self.pods.by_index(POD_INDEX[self.resource], key))

    def reconcile(self, key: str) -> None:
        virtual = self.virtual.get(key)
        copies = self.host_copies(self.resource, self.kind, key)
        if virtual is None or not self.needed(key):
            self.delete_all(self.resource, copies)
            return
        desired = self.translate(virtual, self.ctx.target)
        current = self.pick(self.resource, copies, desired["metadata"]["name"])
        if current is None:
            self.create_host(self.resource, desired, virtual, self.kind)
        elif _must_replace(desired, current):
            self.delete_host(self.resource, current, grace_seconds=0)
            self.create_host(self.resource, desired, virtual, self.kind)
        elif translate.content_differs(desired, current) or translate.marks_differ(desired, current):
            patch = {"metadata": translate.metadata_patch(desired, current)}
            patch.update({k: desired.get(k) for k in ("data", "binaryData", "immutable")
                          if k in desired or k in current})
            self.ctx.host.patch(self.resource, self.ctx.target.namespace, current["metadata"]["name"], patch)


def _must_replace(desired: dict, current: dict) -> bool:
    """Immutable objects, and a Secret's type, can only change by recreation."""
    if desired.get("type") != current.get("type"):
        return True
    return bool(current.get("immutable")) and translate.content_differs(desired, current)
