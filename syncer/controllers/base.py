"""What every controller shares: the context, the worker loop, and host-object helpers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .. import names
from ..informer import Informer, key_of
from ..kube import ApiError, Client, Resource
from ..recorder import Recorder
from ..translate import Target
from ..workqueue import WorkQueue

logger = logging.getLogger(__name__)

VIRTUAL_INDEX = "virtual"  # host informers: "<recorded kind>/<virtual namespace>/<name>"
REFUSALS = (403, 422)  # forbidden (Pod Security, quota) or invalid on the host


@dataclass
class Context:
    target: Target
    virtual: Client
    host: Client
    vinf: dict[Resource, Informer]  # informers on the vcluster
    hinf: dict[Resource, Informer]  # informers on the host namespace (and host nodes)
    recorder: Recorder

    @property
    def vcluster(self) -> str:
        return self.target.vcluster


def virtual_index(obj: dict, vcluster: str) -> list[str]:
    if not names.is_ours(obj, vcluster):
        return []
    return [f"{names.recorded_kind(obj)}/{names.recorded_key(obj)}"]


class Controller:
    name = "controller"

    def __init__(self, ctx: Context, workers: int = 2):
        self.ctx = ctx
        self.queue = WorkQueue()
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
                self.queue.forget(key)
                if again:
                    self.queue.add_after(key, again)
            except ApiError as exc:
                delay = self.queue.retry(key)
                level = logging.DEBUG if exc.conflict else logging.WARNING
                logger.log(level, "%s %s: %s; retrying in %.1fs", self.name, key, exc, delay)
            except Exception:
                delay = self.queue.retry(key)
                logger.exception("%s %s failed; retrying in %.1fs", self.name, key, delay)
            finally:
                self.queue.done(key)

    # Helpers ---------------------------------------------------------------
    def host_copies(self, resource: Resource, kind: str, key: str) -> list[dict]:
        """Host objects of ours recorded as copies of the virtual `kind` `key`."""
        return self.ctx.hinf[resource].by_index(VIRTUAL_INDEX, f"{kind}/{key}")

    def pick(self, resource: Resource, copies: list[dict], name: str) -> dict | None:
        """The copy named `name`; any other copy is a duplicate and is deleted."""
        current = None
        for obj in copies:
            if obj["metadata"]["name"] == name:
                current = obj
            else:
                self.delete_host(resource, obj)
        return current

    def delete_host(self, resource: Resource, obj: dict, grace_seconds: int | None = None) -> None:
        if not names.is_ours(obj, self.ctx.vcluster):  # never reached by design; a last guard
            raise RuntimeError(f"refusing to delete unmarked host object {obj['metadata']['name']}")
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and grace_seconds is None:
            return
        logger.info("%s: deleting host %s %s", self.name, resource.kind, meta["name"])
        self.ctx.host.delete(resource, meta["namespace"], meta["name"], grace_seconds=grace_seconds,
                             uid=meta.get("uid"))

    def delete_all(self, resource: Resource, objs: list[dict]) -> None:
        for obj in objs:
            self.delete_host(resource, obj)

    def virtual_gone(self, resource: Resource, key: str) -> bool:
        """Asks the vcluster, not the cache: a cache can lag behind a delete-and-recreate."""
        namespace, name = key.split("/", 1)
        return self.ctx.virtual.get_or_none(resource, namespace, name) is None

    def create_host(self, resource: Resource, desired: dict, virtual: dict, kind: str) -> dict | None:
        """Create `desired`, or return None: if the host refuses it (a Warning event on the
        virtual object says why; tried again at the next resync, or with backoff when a
        quota is exhausted), or if the name is taken (by a copy the cache does not show
        yet, which the informer will bring; or by a stranger, which an event reports)."""
        meta = desired["metadata"]
        try:
            return self.ctx.host.create(resource, meta["namespace"], desired)
        except ApiError as exc:
            if exc.status in REFUSALS:
                self.ctx.recorder.warn(virtual, kind, "HostRefused",
                                       f"the host cluster refused the {kind}: {exc.message}")
                if "exceeded quota" in exc.message:
                    raise
                return None
            if exc.status != 409:
                raise
        existing = self.ctx.host.get_or_none(resource, meta["namespace"], meta["name"])
        if existing is None:
            return None
        if not names.is_ours(existing, self.ctx.vcluster):
            self.ctx.recorder.warn(virtual, kind, "NameTaken",
                                   f"host {resource.kind} {meta['name']} exists and is not managed by this vcluster")
        elif names.recorded_key(existing) != key_of(virtual):  # a hash collision: vanishingly rare
            self.ctx.recorder.warn(virtual, kind, "NameTaken",
                                   f"host {resource.kind} {meta['name']} stands for {names.recorded_key(existing)}")
        return None

    def host_namespaced_key(self, name: str) -> str:
        return f"{self.ctx.target.namespace}/{name}"
