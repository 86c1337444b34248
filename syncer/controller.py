"""What every kind's controller shares: the context, the worker loop, and the generic
reconcile of a kind the syncer copies from the vcluster to the host.

`Controller` runs a work queue of keys with a few worker threads. `HostSync` is the
controller of a virtual→host kind: its `reconcile` is the one case split every such
kind makes (virtual object gone or not wanted → delete its host copies; else create,
replace or patch the copy; copies under another name removed), and a kind module only
fills in the hooks that differ (`wanted`, `to_host`, `patch`, `must_replace`, `after`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import metrics, names
from .informer import Informer, key_of
from .kube import ApiError, Client, Resource
from .recorder import Recorder
from .translate import Refused, Target
from .workqueue import WorkQueue

if TYPE_CHECKING:
    from .kind import Kind

logger = logging.getLogger(__name__)

VIRTUAL_INDEX = "virtual"  # host informers: "<recorded kind>/<virtual namespace>/<name>"
REFUSALS = (403, 422)  # forbidden (Pod Security, quota) or invalid on the host


@dataclass
class SyncContext:
    """What a controller works with: both clusters, their informers, and its peers."""

    target: Target
    virtual: Client
    host: Client
    vinf: dict[Resource, Informer]  # informers on the vcluster
    hinf: dict[Resource, Informer]  # informers on the host namespace (and host nodes)
    recorder: Recorder
    controllers: dict[str, Controller] = field(default_factory=dict)  # by kind name

    @property
    def vcluster(self) -> str:
        return self.target.vcluster


def virtual_index(obj: dict, vcluster: str) -> list[str]:
    if not names.is_ours(obj, vcluster):
        return []
    return [f"{names.recorded_kind(obj)}/{names.recorded_key(obj)}"]


class Controller:
    def __init__(self, ctx: SyncContext, kind: Kind, workers: int = 2):
        self.ctx = ctx
        self.kind = kind
        self.name = kind.resource.plural
        self.queue = WorkQueue()
        metrics.QUEUE_DEPTH.labels(self.name).set_function(lambda: len(self.queue))
        self._workers = workers
        self._threads: list[threading.Thread] = []

    # To implement ----------------------------------------------------------
    def reconcile(self, key: str) -> float | None:
        """Make the host match the vcluster for `key` (and report back); returns seconds
        after which to look again, if it wants to."""
        raise NotImplementedError

    def keys(self) -> Iterable[str]:
        """Every key worth a look in a full resync."""
        raise NotImplementedError

    # Running ---------------------------------------------------------------
    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def resync(self) -> None:
        for key in self.keys():
            self.queue.add(key)

    def start(self) -> None:
        for i in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.queue.shut_down()

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                again = self.reconcile(key)
                self._synced(key)
                self.queue.forget(key)
                if again:
                    self.queue.add_after(key, again)
            except ApiError as exc:
                metrics.ERRORS.labels(self.name).inc()
                delay = self.queue.retry(key)
                level = logging.DEBUG if exc.conflict else logging.WARNING
                logger.log(level, "%s %s: %s; retrying in %.1fs", self.name, key, exc, delay)
            except Exception:
                metrics.ERRORS.labels(self.name).inc()
                delay = self.queue.retry(key)
                logger.exception("%s %s failed; retrying in %.1fs", self.name, key, delay)
            finally:
                self.queue.done(key)

    def _synced(self, key: str) -> None:
        if (seen := self.queue.seen_at(key)) is not None:
            metrics.SYNC_LAG.labels(self.name).observe(time.monotonic() - seen)

    # Host copies -------------------------------------------------------------
    @property
    def resource(self) -> Resource:
        return self.kind.resource

    def recorded_keys(self) -> list[str]:
        """Virtual keys that host objects of this kind stand for."""
        prefix = self.kind.name + "/"
        return [v[len(prefix):] for v in self.ctx.hinf[self.resource].index_values(VIRTUAL_INDEX)
                if v.startswith(prefix)]

    def host_copies(self, key: str) -> list[dict]:
        """Host objects of ours recorded as copies of the virtual object `key`."""
        return self.ctx.hinf[self.resource].by_index(VIRTUAL_INDEX, f"{self.kind.name}/{key}")

    def pick(self, copies: list[dict], name: str) -> dict | None:
        """The copy to keep: the one named `name`, else the oldest (found by its marks,
        whatever its name: e.g. named by an earlier naming scheme). Any other copy is a
        duplicate and is deleted."""
        if not copies:
            return None
        named = [obj for obj in copies if obj["metadata"]["name"] == name]
        keep = named[0] if named else min(copies, key=lambda obj: obj["metadata"].get("creationTimestamp") or "")
        for obj in copies:
            if obj is not keep:
                self.delete_host(obj)
        return keep

    def delete_host(self, obj: dict, grace_seconds: int | None = None) -> None:
        if not names.is_ours(obj, self.ctx.vcluster):  # never reached by design; a last guard
            raise RuntimeError(f"refusing to delete unmarked host object {obj['metadata']['name']}")
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and grace_seconds is None:
            return
        logger.info("%s: deleting host %s %s", self.name, self.resource.kind, meta["name"])
        self.ctx.host.delete(self.resource, meta["namespace"], meta["name"], grace_seconds=grace_seconds,
                             uid=meta.get("uid"))

    def delete_all(self, objs: list[dict]) -> None:
        for obj in objs:
            self.delete_host(obj)

    def virtual_gone(self, key: str) -> bool:
        """Asks the vcluster, not the cache: a cache can lag behind a delete-and-recreate."""
        namespace, name = key.split("/", 1)
        return self.ctx.virtual.get_or_none(self.resource, namespace, name) is None

    def refuse(self, virtual: dict, reason: str) -> None:
        self.ctx.recorder.warn(virtual, self.kind.name, "HostRefused",
                               f"the host cluster refused the {self.kind.name}: {reason}")

    def create_host(self, desired: dict, virtual: dict) -> dict | None:
        """Create `desired`, or return None: if the host refuses it (a Warning event on the
        virtual object says why; tried again at the next resync, or with backoff when a
        quota is exhausted), or if the name is taken (by a copy the cache does not show
        yet, which the informer will bring; or by a stranger, which an event reports)."""
        meta = desired["metadata"]
        try:
            return self.ctx.host.create(self.resource, meta["namespace"], desired)
        except ApiError as exc:
            if exc.status in REFUSALS:
                self.refuse(virtual, exc.message)
                if "exceeded quota" in exc.message:
                    raise
                return None
            if exc.status != 409:
                raise
        existing = self.ctx.host.get_or_none(self.resource, meta["namespace"], meta["name"])
        if existing is None:
            return None
        if not names.is_ours(existing, self.ctx.vcluster):
            self.ctx.recorder.warn(virtual, self.kind.name, "NameTaken", f"host {self.resource.kind} "
                                   f"{meta['name']} exists and is not managed by this vcluster")
        elif names.recorded_key(existing) != key_of(virtual):  # a hash collision: vanishingly rare
            self.ctx.recorder.warn(virtual, self.kind.name, "NameTaken", f"host {self.resource.kind} "
                                   f"{meta['name']} stands for {names.recorded_key(existing)}")
        return None

    def host_namespaced_key(self, name: str) -> str:
        return f"{self.ctx.target.namespace}/{name}"


class HostSync(Controller):
    """The controller of a kind copied from the vcluster to the host."""

    # Hooks -------------------------------------------------------------------
    def keys(self) -> Iterable[str]:
        return {*self.ctx.vinf[self.resource].keys(), *self.recorded_keys()}

    def wanted(self, key: str) -> dict | None:
        """The virtual object if it should have a host copy."""
        return self.ctx.vinf[self.resource].get(key)

    def may_delete(self, key: str) -> bool:
        """Whether copies of an unwanted `key` may go now."""
        return True

    def to_host(self, virtual: dict) -> dict:
        """The host copy; raises translate.Refused when it cannot be made safe."""
        raise NotImplementedError

    def patch(self, desired: dict, current: dict) -> dict | None:
        """A merge patch bringing `current` to `desired`; None when nothing differs."""
        raise NotImplementedError

    def must_replace(self, desired: dict, current: dict) -> bool:
        """True when `current` cannot be patched into `desired`."""
        return False

    def after(self, virtual: dict, current: dict) -> float | None:
        """Report back to the vcluster once the copy is in place."""
        return None

    # The case split ----------------------------------------------------------
    def reconcile(self, key: str) -> float | None:
        virtual = self.wanted(key)
        copies = self.host_copies(key)
        if virtual is None:
            if copies and self.may_delete(key):
                self.delete_all(copies)
            return None
        try:
            desired = self.to_host(virtual)
        except Refused as refusal:
            self.refuse(virtual, str(refusal))
            self.delete_all(copies)
            return None
        current = self.pick(copies, desired["metadata"]["name"])
        if current is not None and not self.update(desired, current):
            self.delete_host(current, grace_seconds=0)
            current = None
        if current is None:
            current = self.create_host(desired, virtual)
            if current is None:
                return None
        return self.after(virtual, current)

    def update(self, desired: dict, current: dict) -> bool:
        """Patch `current` to match `desired`; False if it must be replaced instead."""
        if self.must_replace(desired, current):
            return False
        patch = self.patch(desired, current)
        if patch:
            self.ctx.host.patch(self.resource, self.ctx.target.namespace, current["metadata"]["name"], patch)
        return True
