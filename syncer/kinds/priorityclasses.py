"""PriorityClasses, host → vcluster, and the class a tenant pod gets on the host.

The host classes the tenant policy lists (`priority_classes`; never a `system-` class,
which the policy refuses) are mirrored read-only into the vcluster (syncer.kinds.mirror):
value, preemption policy and description, never as the global default (the host gives
its own to pods without a class). A pod naming one keeps it on the host. A pod naming
any other class (a tenant's own, or the vcluster's system classes, as its CoreDNS does)
gets the listed class of the highest value not above its own priority, or none (the
host's default): a tenant ranks its pods within what it was offered, never above.
"""

from __future__ import annotations

import dataclasses

from ..controller import SyncContext
from ..kind import ALL, HOST, OURS, READ, VIRTUAL, Kind, Watch, changed_key
from ..kube import PRIORITYCLASSES
from ..translate import Target
from .mirror import HostMirror, every_mirror


def offered(ctx: SyncContext) -> tuple[tuple[str, int], ...]:
    """(name, value) of the host classes tenant pods may use, as the host has them now."""
    listed = ctx.target.policy.priority_classes
    return tuple(sorted((c["metadata"]["name"], c["value"]) for c in ctx.hinf[PRIORITYCLASSES].values()
                        if c["metadata"]["name"] in listed))


def with_offered(ctx: SyncContext, target: Target) -> Target:
    return dataclasses.replace(target, priority_classes=offered(ctx))


class PriorityMirror(HostMirror):
    immutable = ("value", "preemptionPolicy")
    mutable = ("description",)

    def mirror(self, host_class: dict) -> dict | None:
        if host_class["metadata"]["name"] not in self.ctx.target.policy.priority_classes:
            return None
        return {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": host_class["metadata"]["name"], "labels": self.labels()},
            "value": host_class["value"],
            "globalDefault": False,
            **{k: host_class[k] for k in ("preemptionPolicy", "description") if k in host_class},
        }


KIND = Kind(
    name="PriorityClass", resource=PRIORITYCLASSES, controller=PriorityMirror, to_host=False,
    virtual_objects=OURS, host_objects=ALL, host_verbs=READ, workers=1,
    watches=(Watch(HOST, PRIORITYCLASSES, every_mirror("PriorityClass")),
             Watch(VIRTUAL, PRIORITYCLASSES, changed_key)),
)
