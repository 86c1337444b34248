"""Events the syncer itself tells the tenant about their objects, in the vcluster.

Repeats of the same reason and message on the same object bump its count instead of
adding events, as the kubelet's recorder does.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone

from .kube import EVENTS, ApiError, Client

logger = logging.getLogger(__name__)

COMPONENT = "vcportal-syncer"
REMEMBERED = 2048


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    def __init__(self, client: Client):
        self.client = client
        self._sent: OrderedDict[tuple, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def warn(self, obj: dict, kind: str, reason: str, message: str) -> None:
        self.record(obj, kind, "Warning", reason, message)

    def record(self, obj: dict, kind: str, type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        logger.info("event %s %s/%s: %s: %s", type_, meta.get("namespace"), meta["name"], reason, message)
        key = (meta.get("uid"), reason, message)
        with self._lock:
            previous = self._sent.pop(key, None)
        try:
            if previous is None:
                sent = self._create(meta, kind, type_, reason, message)
            else:
                sent = self._bump(meta["namespace"], *previous)
        except ApiError as exc:
            logger.warning("could not record event on %s/%s: %s", meta.get("namespace"), meta["name"], exc)
            return
        with self._lock:
            self._sent[key] = sent
            while len(self._sent) > REMEMBERED:
                self._sent.popitem(last=False)

    def _create(self, meta: dict, kind: str, type_: str, reason: str, message: str) -> tuple[str, int]:
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        stamp = now_iso()
        self.client.create(EVENTS, meta["namespace"], {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": kind, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT},
        })
        return name, 1

    def _bump(self, namespace: str, name: str, count: int) -> tuple[str, int]:
        self.client.patch(EVENTS, namespace, name, {"count": count + 1, "lastTimestamp": now_iso()})
        return name, count + 1
