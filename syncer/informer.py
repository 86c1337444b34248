"""A local copy of one kind of object, kept current by list + watch.

The loop: list (the copy becomes exactly what the server has, and handlers hear about
every difference), then watch from the list's resourceVersion. A watch that ends or
drops is resumed from the last resourceVersion seen (bookmarks keep it fresh); a watch
the server no longer serves (410 Gone) or any other failure leads to a fresh list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import urllib3

from .kube import ApiError, Client, Resource

logger = logging.getLogger(__name__)

Handler = Callable[[dict | None, dict | None], None]  # (old, new): add, update or delete
IndexFunc = Callable[[dict], list[str]]


def key_of(obj: dict) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


def slim(obj: dict) -> dict:
    """Drop what the syncer never reads and costs the most memory."""
    obj["metadata"].pop("managedFields", None)
    return obj


class Backoff:
    def __init__(self, first: float = 0.2, limit: float = 10):
        self.first, self.limit, self.current = first, limit, first

    def next(self) -> float:
        delay, self.current = self.current, min(self.current * 2, self.limit)
        return delay

    def reset(self) -> None:
        self.current = self.first


class Informer:
    def __init__(self, client: Client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, transform: Callable[[dict], dict] = slim,
                 watch_timeout: int = 300):
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.name = f"{resource.plural}@{client.server}" + (f"/{namespace}" if namespace else "")
        self.synced = threading.Event()
        self._transform = transform
        self._watch_timeout = watch_timeout
        self._store: dict[str, dict] = {}
        self._indexes: dict[str, tuple[IndexFunc, dict[str, set[str]]]] = {}
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watch = None
        self._thread: threading.Thread | None = None

    # Reading -------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        return self._store.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._store)

    def values(self) -> list[dict]:
        with self._lock:
            return list(self._store.values())

    def by_index(self, index: str, value: str) -> list[dict]:
        with self._lock:
            keys = self._indexes[index][1].get(value, ())
            return [self._store[k] for k in keys]

    def index_values(self, index: str) -> list[str]:
        with self._lock:
            return list(self._indexes[index][1])

    # Wiring --------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Keep `func(obj)` → keys, so `by_index(name, value)` needs no scan."""
        self._indexes[name] = (func, {})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer {self.resource.plural}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        watch = self._watch
        if watch is not None:
            watch.close()

    # The loop ------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                version = self._list()
                backoff.reset()
                self._watch_from(version)
            except Exception as exc:  # the next list starts from scratch, whatever broke
                if self._stopped.is_set():
                    return
                delay = backoff.next()
                logger.warning("%s: %s; listing again in %.1fs", self.name, _short(exc), delay)
                self._stopped.wait(delay)

    def _list(self) -> str:
        listing = self.client.list(self.resource, self.namespace, label_selector=self.label_selector)
        items = [self._transform(item) for item in listing.get("items") or []]
        self._replace(items)
        self.synced.set()
        return listing["metadata"]["resourceVersion"]

    def _watch_from(self, version: str) -> None:
        """Watch until a fresh list is needed (410 Gone) or the informer stops."""
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                self._watch = self.client.watch(
                    self.resource, self.namespace, version,
                    label_selector=self.label_selector, timeout_seconds=self._watch_timeout,
                )
                with self._watch as events:
                    for event in events:
                        version = self._handle(event)
                backoff.reset()
            except ApiError as exc:
                if exc.gone:
                    logger.info("%s: watch expired; listing again", self.name)
                    return
                raise
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if self._stopped.is_set():
                    return
                delay = backoff.next()
                logger.info("%s: watch dropped (%s); resuming in %.1fs", self.name, _short(exc), delay)
                self._stopped.wait(delay)
            finally:
                self._watch = None

    def _handle(self, event: dict) -> str:
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            raise ApiError(obj.get("code", 500), obj)
        if kind != "BOOKMARK":
            obj = self._transform(obj)
            if kind == "DELETED":
                self._apply(key_of(obj), None)
            else:
                self._apply(key_of(obj), obj)
        return obj["metadata"]["resourceVersion"]

    # The store -----------------------------------------------------------
    def _replace(self, items: list[dict]) -> None:
        fresh = {key_of(item): item for item in items}
        changes = []
        with self._lock:
            for key in list(self._store):
                if key not in fresh:
                    changes.append(self._put(key, None))
            for key, item in fresh.items():
                changes.append(self._put(key, item))
        for old, new in changes:
            if _version(old) != _version(new):
                self._notify(old, new)

    def _apply(self, key: str, obj: dict | None) -> None:
        with self._lock:
            old, new = self._put(key, obj)
        if old is not None or new is not None:
            self._notify(old, new)

    def _put(self, key: str, obj: dict | None) -> tuple[dict | None, dict | None]:
        old = self._store.pop(key, None) if obj is None else self._store.get(key)
        if obj is not None:
            self._store[key] = obj
        for func, index in self._indexes.values():
            for value in func(old) if old is not None else ():
                members = index.get(value)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del index[value]
            for value in func(obj) if obj is not None else ():
                index.setdefault(value, set()).add(key)
        return old, obj

    def _notify(self, old: dict | None, new: dict | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:
                logger.exception("%s: handler failed", self.name)


def _version(obj: dict | None) -> str | None:
    return obj["metadata"].get("resourceVersion") if obj is not None else None


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"
