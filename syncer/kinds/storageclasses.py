"""StorageClasses, host → vcluster: a read-only mirror of the host classes a tenant's
claims may name, so `kubectl get storageclass` and charts asking for a class work.

Offered are the host's default class (claims without a class get it on the host anyway)
and those the host's tenant policy lists (`storage_classes`). Each is mirrored under its
own name with the host's binding mode and expansion setting, marked default when it is
the host's default (the newest such class, as Kubernetes picks), so the vcluster's
admission gives class-less claims its name. Nothing else crosses: no parameters, mount
options or topologies (they describe host storage), and the provisioner is the syncer's
volume driver (syncer.kinds.volumes), which is what provisions for the vcluster: its
reclaim policy is Delete for the same reason as its volumes'.

A mirror the tenant edits or deletes is put back. A tenant may make classes of its own;
a claim naming one is refused (syncer.kinds.pods.safety.check_storage_class).
"""

from __future__ import annotations

import dataclasses
import logging

from ..controller import Controller, SyncContext
from ..kind import ALL, HOST, OURS, READ, VIRTUAL, Kind, Watch, changed_key
from ..kube import STORAGECLASSES, ApiError
from ..names import LABEL_MANAGED_BY
from ..translate import Target
from .volumes import DRIVER

logger = logging.getLogger(__name__)

ANN_DEFAULT = "storageclass.kubernetes.io/is-default-class"
MIRRORED = ("volumeBindingMode", "allowVolumeExpansion")
IMMUTABLE = ("provisioner", "reclaimPolicy", "volumeBindingMode")


def host_default(classes: list[dict]) -> str | None:
    defaults = [c for c in classes if (c["metadata"].get("annotations") or {}).get(ANN_DEFAULT) == "true"]
    newest = max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]),
                 default=None)
    return newest["metadata"]["name"] if newest else None


def with_host_default(ctx: SyncContext, target: Target) -> Target:
    """`target` knowing the host's default class, which claims may always name."""
    return dataclasses.replace(target, default_storage_class=host_default(ctx.hinf[STORAGECLASSES].values()))


def virtual_class(host_class: dict, is_default: bool, vcluster: str) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": host_class["metadata"]["name"],
            "labels": {LABEL_MANAGED_BY: vcluster},
            "annotations": {ANN_DEFAULT: "true" if is_default else "false"},
        },
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        **{k: host_class[k] for k in MIRRORED if k in host_class},
    }


def all_classes(ctx: SyncContext, old: dict | None, new: dict | None) -> list[str]:
    """A host class's change may move the default: every class is looked at again."""
    return ctx.controllers[KIND.name].keys()


class ClassSync(Controller):
    def __init__(self, ctx, kind, workers: int = 1):
        super().__init__(ctx, kind, workers)
        self.host = ctx.hinf[STORAGECLASSES]
        self.virtual = ctx.vinf[STORAGECLASSES]

    def keys(self) -> list[str]:
        return sorted({*self.host.keys(), *self.virtual.keys()})

    def offered(self) -> tuple[set[str], str | None]:
        default = host_default(self.host.values())
        return {*self.ctx.target.policy.storage_classes, *([default] if default else [])}, default

    def reconcile(self, name: str) -> None:
        host, current = self.host.get(name), self.virtual.get(name)
        offered, default = self.offered()
        if host is None or name not in offered:
            if current is not None:
                self._delete(current)
            return
        desired = virtual_class(host, name == default, self.ctx.vcluster)
        if current is not None and any(current.get(k) != desired.get(k) for k in IMMUTABLE):
            self._delete(current)
            current = None
        if current is None:
            self._create(desired)
        elif patch := _patch(desired, current):
            self.ctx.virtual.patch(STORAGECLASSES, None, name, patch)

    def _create(self, desired: dict) -> None:
        try:
            self.ctx.virtual.create(STORAGECLASSES, None, desired)
        except ApiError as exc:
            if not exc.conflict:
                raise
            # Taken by a class of the tenant's own, which stays; claims naming it are refused.
            logger.warning("storageclasses: %s is the tenant's own; the host's is not mirrored",
                           desired["metadata"]["name"])

    def _delete(self, current: dict) -> None:
        meta = current["metadata"]
        logger.info("storageclasses: deleting virtual StorageClass %s", meta["name"])
        self.ctx.virtual.delete(STORAGECLASSES, None, meta["name"], uid=meta.get("uid"))


def _patch(desired: dict, current: dict) -> dict:
    patch = {k: desired.get(k) for k in MIRRORED if current.get(k) != desired.get(k)}
    have = current["metadata"]
    if (have.get("annotations") or {}).get(ANN_DEFAULT) != desired["metadata"]["annotations"][ANN_DEFAULT] or \
            (have.get("labels") or {}) != desired["metadata"]["labels"]:
        patch["metadata"] = {"annotations": desired["metadata"]["annotations"],
                             "labels": {**{k: None for k in have.get("labels") or {}}, **desired["metadata"]["labels"]}}
    return patch


KIND = Kind(
    name="StorageClass", resource=STORAGECLASSES, controller=ClassSync, to_host=False,
    virtual_objects=OURS, host_objects=ALL, host_verbs=READ, workers=1,
    watches=(Watch(HOST, STORAGECLASSES, all_classes), Watch(VIRTUAL, STORAGECLASSES, changed_key)),
)
