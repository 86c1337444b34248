"""Events, host → vcluster: host events about synced pods, services and claims, shown
on their virtual objects.

The scheduler's "FailedScheduling", a kubelet's "FailedMount" or a provisioner's
errors happen on the host; the tenant sees them with `kubectl describe` in the vcluster.
"""

from __future__ import annotations

from .. import names
from ..controller import Controller
from ..informer import key_of
from ..kind import ALL, HOST, READ, Kind, Watch
from ..kube import EVENTS, PODS, PVCS, SERVICES, ApiError
from ..translate import age

KINDS = {"Pod": PODS, "Service": SERVICES, "PersistentVolumeClaim": PVCS}
# An event may arrive before the informer shows the object it is about.
WAIT_FOR_OBJECT = 30


def virtual_event(host_event: dict, kind: str, involved: dict, host_name: str, host_namespace: str) -> dict:
    """A host event about a synced object, told about its virtual counterpart
    (`involved`: the virtual object). Host names in the message become virtual ones."""
    meta = involved["metadata"]
    message = (host_event.get("message") or "")
    message = message.replace(f"{host_namespace}/{host_name}", f"{meta['namespace']}/{meta['name']}")
    message = message.replace(host_name, meta["name"])
    ref = host_event.get("involvedObject") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{names.digest(host_event['metadata']['uid'])}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            **({"fieldPath": ref["fieldPath"]} if ref.get("fieldPath") else {}),
        },
        "reason": host_event.get("reason"),
        "message": message,
        "type": host_event.get("type") or "Normal",
        "count": host_event.get("count") or 1,
        "firstTimestamp": host_event.get("firstTimestamp") or host_event.get("eventTime"),
        "lastTimestamp": host_event.get("lastTimestamp") or host_event.get("eventTime"),
        "source": host_event.get("source") or {"component": host_event.get("reportingComponent", "")},
    }


def wanted(event: dict, host_namespace: str) -> bool:
    ref = event.get("involvedObject") or {}
    return ref.get("kind") in KINDS and ref.get("namespace") == host_namespace


class EventSync(Controller):
    def __init__(self, ctx, kind, workers: int = 2):
        super().__init__(ctx, kind, workers)
        self.hosts = ctx.hinf[EVENTS]
        self._copied_versions: dict[str, str] = {}  # host event key → resourceVersion copied

    def keys(self):
        return self.hosts.keys()

    def reconcile(self, key: str) -> float | None:
        event = self.hosts.get(key)
        if event is None:
            self._copied_versions.pop(key, None)
            return None
        version = event["metadata"]["resourceVersion"]
        if self._copied_versions.get(key) == version or not wanted(event, self.ctx.target.namespace):
            return None
        ref = event["involvedObject"]
        host_obj = self.ctx.hinf[KINDS[ref["kind"]]].get(f"{ref['namespace']}/{ref['name']}")
        if host_obj is None:
            return 1 if age(event) < WAIT_FOR_OBJECT else None
        if not names.is_ours(host_obj, self.ctx.vcluster) or (ref.get("uid") and ref["uid"] != host_obj["metadata"]["uid"]):
            return None
        virtual = self.ctx.vinf[KINDS[ref["kind"]]].get(names.recorded_key(host_obj))
        if virtual is None:
            return None
        self._copy(virtual_event(event, ref["kind"], virtual, ref["name"], self.ctx.target.namespace))
        self._copied_versions[key] = version
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


def _new_event(ctx, old: dict | None, new: dict | None) -> list[str]:
    return [key_of(new)] if new is not None and wanted(new, ctx.target.namespace) else []


KIND = Kind(
    name="Event",
    resource=EVENTS,
    controller=EventSync,
    to_host=False,
    virtual_objects=None,
    host_objects=ALL,
    host_verbs=READ,
    watches=(Watch(HOST, EVENTS, _new_event),),
)
