"""Read-only mirrors in the vcluster of cluster-scoped host objects a tenant may use by
name (storage classes, priority classes): each offered one is shown under its own name,
a mirror the tenant edits or deletes is put back, and one the host stops offering goes.
A tenant's own object of the same name is left alone (the host's is then not shown).
"""

from __future__ import annotations

import logging

from ..controller import Controller, SyncContext
from ..kube import ApiError
from ..names import LABEL_MANAGED_BY

logger = logging.getLogger(__name__)


def newest_default(objects: list[dict], annotation: str) -> str | None:
    """The name of the newest object `annotation` marks default: the one Kubernetes
    picks when more than one is (storage and ingress classes)."""
    defaults = [o for o in objects if (o["metadata"].get("annotations") or {}).get(annotation) == "true"]
    newest = max(defaults, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]),
                 default=None)
    return newest["metadata"]["name"] if newest else None


def offered_classes(classes: list[dict], default_annotation: str, listed: tuple[str, ...]) -> set[str]:
    """Names of the host classes tenants may use: the host's default and those listed."""
    default = newest_default(classes, default_annotation)
    class_names = (c["metadata"]["name"] for c in classes)
    return {name for name in class_names if name == default or name in listed}


def every_mirror(kind_name: str):
    """Watch keys: one host object's change may change what else is offered (the default
    class moves), so every name is looked at again; these kinds have few objects."""
    def keys(ctx: SyncContext, old: dict | None, new: dict | None) -> list[str]:
        return ctx.controllers[kind_name].keys()
    return keys


class HostMirror(Controller):
    immutable: tuple[str, ...] = ()  # top-level fields the API lets change only by recreating
    mutable: tuple[str, ...] = ()  # top-level fields patched in place

    def __init__(self, ctx, kind, workers: int = 1):
        super().__init__(ctx, kind, workers)
        self.host = ctx.hinf[kind.resource]
        self.virtual = ctx.vinf[kind.resource]

    def mirror(self, host_object: dict) -> dict | None:
        """The virtual object showing `host_object`, or None when it is not offered."""
        raise NotImplementedError

    def labels(self) -> dict:
        return {LABEL_MANAGED_BY: self.ctx.vcluster}

    def keys(self) -> list[str]:
        return sorted({*self.host.keys(), *self.virtual.keys()})

    def reconcile(self, name: str) -> None:
        host = self.host.get(name)
        desired = self.mirror(host) if host is not None else None
        current = self.virtual.get(name)
        if desired is None:
            if current is not None:
                self._delete(current)
            return
        if current is not None and any(current.get(k) != desired.get(k) for k in self.immutable):
            self._delete(current)
            current = None
        if current is None:
            self._create(desired)
        elif patch := self._patch(desired, current):
            self.ctx.virtual.patch(self.resource, None, name, patch)

    def _create(self, desired: dict) -> None:
        try:
            self.ctx.virtual.create(self.resource, None, desired)
        except ApiError as exc:
            if not exc.conflict:
                raise
            logger.warning("%s: %s is the tenant's own; the host's is not shown", self.name,
                           desired["metadata"]["name"])

    def _delete(self, current: dict) -> None:
        meta = current["metadata"]
        logger.info("%s: deleting the mirror %s", self.name, meta["name"])
        self.ctx.virtual.delete(self.resource, None, meta["name"], uid=meta.get("uid"))

    def _patch(self, desired: dict, current: dict) -> dict:
        patch = {k: desired.get(k) for k in self.mutable if current.get(k) != desired.get(k)}
        want, have = desired["metadata"], current["metadata"]
        annotations = want.get("annotations") or {}
        if any((have.get("annotations") or {}).get(k) != v for k, v in annotations.items()) or \
                (have.get("labels") or {}) != want["labels"]:
            patch["metadata"] = {"annotations": annotations,
                                 "labels": {**{k: None for k in have.get("labels") or {}}, **want["labels"]}}
        return patch


class OfferedClassMirror(HostMirror):
    """A mirror of the host classes a tenant may name (storage, ingress): the host's default,
    marked default inside too, and those the tenant policy lists."""

    api_version = ""
    default_annotation = ""

    def listed(self) -> tuple[str, ...]:
        raise NotImplementedError

    def body(self, host_class: dict) -> dict:
        """The mirror's fields besides its identity and marks."""
        raise NotImplementedError

    def mirror(self, host_class: dict) -> dict | None:
        name = host_class["metadata"]["name"]
        default = newest_default(self.host.values(), self.default_annotation)
        if name != default and name not in self.listed():
            return None
        return {
            "apiVersion": self.api_version,
            "kind": self.kind.name,
            "metadata": {"name": name, "labels": self.labels(),
                         "annotations": {self.default_annotation: "true" if name == default else "false"}},
            **self.body(host_class),
        }
