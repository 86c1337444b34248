"""What a kind module declares, for the runner and the RBAC to be built from.

Every kind the syncer handles has one module in `syncer/kinds/` with a `KIND`: its
resource, what it needs on the host (the verbs of its RBAC rule), which objects to
watch on each side, its controller class, and the other changes it must hear about
(its watches and indexes). `syncer/kinds/__init__.py` lists them; the runner makes
the informers, indexes and routing from that list, and `syncer.rbac.host_rules()`
the host Role. Adding a kind is one module and its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .informer import key_of
from .kube import Resource

if TYPE_CHECKING:
    from .controller import Controller, SyncContext

VIRTUAL, HOST = "virtual", "host"
# Which objects an informer lists: every one, or only those labelled with our vcluster.
ALL, OURS = "all", "ours"
WRITE = ("get", "list", "watch", "create", "patch", "delete")
READ = ("get", "list", "watch")

Keys = Callable[["SyncContext", "dict | None", "dict | None"], Iterable[str]]  # (ctx, old, new) → keys


@dataclass(frozen=True)
class Watch:
    """A change on `side`'s informer of `resource` that makes the kind look at `keys`."""

    side: str
    resource: Resource
    keys: Keys


@dataclass(frozen=True)
class Index:
    """An index the kind reads on `side`'s informer of `resource`."""

    side: str
    resource: Resource
    name: str
    values: Callable[[dict], list[str]]


@dataclass(frozen=True)
class Kind:
    name: str  # the object kind, recorded on host copies (names.ANN_KIND)
    resource: Resource
    controller: type[Controller]
    # A virtual→host kind: host copies carry our marks, and their changes come back to it.
    to_host: bool = True
    virtual_objects: str | None = ALL  # which virtual objects to watch (None: none)
    host_objects: str | None = OURS  # which host objects to watch, in the host namespace if namespaced
    host_verbs: tuple[str, ...] = WRITE  # what the syncer may do with them on the host
    # Subresources of its host objects the syncer uses, and how: (("log", ("get",)), …)
    host_subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Other kinds recorded on host objects this kind writes (the pods' token Secrets).
    also_records: tuple[str, ...] = ()
    watches: tuple[Watch, ...] = ()
    indexes: tuple[Index, ...] = ()
    workers: int | None = 2  # None: as many as the config's `workers`

    def all_watches(self) -> tuple[Watch, ...]:
        """A virtual→host kind also hears about every change of its own virtual objects."""
        own = (Watch(VIRTUAL, self.resource, changed_key),) if self.to_host else ()
        return own + self.watches


def changed_key(ctx: SyncContext, old: dict | None, new: dict | None) -> list[str]:
    return [key_of(new or old)]
