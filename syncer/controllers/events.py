"""Host events about synced pods, services and claims, shown on their virtual objects.

The scheduler's "FailedScheduling", a kubelet's "FailedMount" or a provisioner's
errors happen on the host; the tenant sees them with `kubectl describe` in the vcluster.
"""

from __future__ import annotations

import time
from datetime import datetime

from .. import names, translate
from ..kube import EVENTS, PODS, PVCS, SERVICES, ApiError
from .base import Context, Controller

KINDS = {"Pod": PODS, "Service": SERVICES, "PersistentVolumeClaim": PVCS}
# An event may arrive before the informer shows the object it is about.
WAIT_FOR_OBJECT = 30


class EventController(Controller):
    name = "events"

    def __init__(self, ctx: Context, workers: int = 2):
        super().__init__(ctx, workers)
        self.hosts = ctx.hinf[EVENTS]
        self._synced: dict[str, str] = {}  # host event key → resourceVersion copied

    def keys(self):
        return self.hosts.keys()

    def wants(self, event: dict) -> bool:
        ref = event.get("involvedObject") or {}
        return ref.get("kind") in KINDS and ref.get("namespace") == self.ctx.target.namespace

    def reconcile(self, key: str) -> float | None:
        event = self.hosts.get(key)
        if event is None:
            self._synced.pop(key, None)
            return None
        version = event["metadata"]["resourceVersion"]
        if self._synced.get(key) == version or not self.wants(event):
            return None
        ref = event["involvedObject"]
        host_obj = self.ctx.hinf[KINDS[ref["kind"]]].get(f"{ref['namespace']}/{ref['name']}")
        if host_obj is None:
            return 1 if _age(event) < WAIT_FOR_OBJECT else None
        if not names.is_ours(host_obj, self.ctx.vcluster) or (ref.get("uid") and ref["uid"] != host_obj["metadata"]["uid"]):
            return None
        virtual = self.ctx.vinf[KINDS[ref["kind"]]].get(names.recorded_key(host_obj))
        if virtual is None:
            return None
        self._copy(translate.virtual_event(event, ref["kind"], virtual, ref["name"], self.ctx.target.namespace))
        self._synced[key] = version
        return None

    def _copy(self, event: dict) -> None:
        meta = event["metadata"]
        try:
            self.ctx.virtual.create(EVENTS, meta["namespace"], event)
        except ApiError as exc:
            if not exc.conflict:
                raise
            self.ctx.virtual.patch(EVENTS, meta["namespace"], meta["name"],
                                   {k: event[k] for k in ("count", "lastTimestamp", "message")})


def _age(event: dict) -> float:
    created = event["metadata"].get("creationTimestamp")
    if not created:
        return 0
    return time.time() - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
