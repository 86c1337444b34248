"""ConfigMaps, vcluster → host, while a virtual pod refers to them.

Copies follow their virtual object (data, labels) and are deleted once no virtual pod
needs them or the virtual object is gone. Everything else in the vcluster stays there.
`PodReferenced` is shared with Secrets.
"""

from __future__ import annotations

from ..controller import HostSync
from ..kind import VIRTUAL, Kind, Watch
from ..kube import CONFIGMAPS, PODS, Resource
from ..translate import Target, host_object, marks_patch
from .pods import REF_INDEXES
from .pods.translate import pod_refs

CONTENT = ("data", "binaryData", "immutable")


class PodReferenced(HostSync):
    def _index(self) -> str:
        return REF_INDEXES[self.kind.name]

    def keys(self):
        return {*self.ctx.vinf[PODS].index_values(self._index()), *self.recorded_keys()}

    def wanted(self, key: str) -> dict | None:
        if not self.ctx.vinf[PODS].by_index(self._index(), key):
            return None
        return self.ctx.vinf[self.resource].get(key)

    def must_replace(self, desired: dict, current: dict) -> bool:
        """Immutable objects, and a Secret's type, can only change by recreation."""
        if desired.get("type") != current.get("type"):
            return True
        return bool(current.get("immutable")) and content_differs(desired, current)

    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        if content_differs(desired, current):
            patch.update({k: desired.get(k) for k in CONTENT if k in desired or k in current})
        return patch or None


def content_differs(desired: dict, actual: dict) -> bool:
    return any(desired.get(k) != actual.get(k) for k in ("data", "binaryData", "type", "immutable"))


def pod_referenced(name: str, resource: Resource, controller: type[PodReferenced]) -> Kind:
    """A kind copied while pods refer to it: it hears about pods added and deleted (a
    running pod's references never change)."""
    def referenced(ctx, old: dict | None, new: dict | None) -> list[str]:
        if old is not None and new is not None:
            return []
        pod = new or old
        namespace = pod["metadata"]["namespace"]
        return [f"{namespace}/{ref}" for ref in pod_refs(pod).of(name)]

    return Kind(name=name, resource=resource, controller=controller, watches=(Watch(VIRTUAL, PODS, referenced),))


def host_configmap(configmap: dict, target: Target) -> dict:
    return host_object("ConfigMap", configmap, target, **{k: configmap[k] for k in CONTENT if k in configmap})


class ConfigMapSync(PodReferenced):
    def to_host(self, virtual: dict) -> dict:
        return host_configmap(virtual, self.ctx.target)


KIND = pod_referenced("ConfigMap", CONFIGMAPS, ConfigMapSync)
