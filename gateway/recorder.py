"""Attribution written off the request path.

Requests only append to memory; a background task writes everything at most every
VCPORTAL_GATEWAY_FLUSH_INTERVAL seconds in one transaction: mutating requests as
AccessRecord rows, reads and writes as per-day counters, the last request as the
vcluster's Activity. stop() (ASGI lifespan shutdown) writes what is left, so a normal
shutdown loses nothing. A failed write keeps its data for the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F

from .background import cancel_and_wait
from .models import AccessRecord, Activity, RequestCount
from .requestinfo import RequestInfo

logger = logging.getLogger(__name__)

# Past this many unwritten records (the database has been down a long time) the
# oldest are dropped, so memory stays bounded; the counters are kept.
MAX_PENDING_RECORDS = 100_000


class Batch:
    def __init__(self):
        self.records: list[dict] = []
        self.reads: Counter[tuple[int, date]] = Counter()
        self.writes: Counter[tuple[int, date]] = Counter()
        self.last: dict[int, tuple[datetime, str]] = {}

    def __bool__(self):
        return bool(self.records or self.reads or self.writes or self.last)

    def merge_older(self, older: Batch) -> None:
        """Put back a batch that failed to write, ahead of what came since."""
        self.records[:0] = older.records
        del self.records[:-MAX_PENDING_RECORDS]
        self.reads.update(older.reads)
        self.writes.update(older.writes)
        for vcluster_id, last in older.last.items():
            self.last.setdefault(vcluster_id, last)


class Recorder:
    def __init__(self, run_in_db, interval: float | None = None):
        self._run_in_db = run_in_db
        self.interval = settings.VCPORTAL_GATEWAY_FLUSH_INTERVAL if interval is None else interval
        self._batch = Batch()
        self._task: asyncio.Task | None = None

    def note(self, vcluster_id: int, user_id: int, username: str, info: RequestInfo, code: int,
             *, name: str = "", path: str = "") -> None:
        now = datetime.now(UTC)
        key = (vcluster_id, now.date())
        if info.mutating:
            self._batch.records.append({
                "vcluster_id": vcluster_id, "user_id": user_id, "username": username, "at": now,
                "verb": info.verb, "api_group": info.api_group, "resource": info.resource,
                "subresource": info.subresource, "namespace": info.namespace, "name": info.name or name,
                "path": "" if info.is_resource else path[:1000], "code": code,
            })
            self._batch.writes[key] += 1
        else:
            self._batch.reads[key] += 1
        self._batch.last[vcluster_id] = (now, username)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        batch, self._batch = self._batch, Batch()
        if not batch:
            return
        try:
            await self._run_in_db(write_batch, batch)
        except Exception as exc:  # the database is unavailable: keep the data, try again later
            logger.warning("gateway: could not write %d access records (%s); retrying later",
                           len(batch.records), type(exc).__name__)
            self._batch.merge_older(batch)


def write_batch(batch: Batch) -> None:
    with transaction.atomic():
        AccessRecord.objects.bulk_create([AccessRecord(**record) for record in batch.records])
        for key in batch.reads.keys() | batch.writes.keys():
            _add_counts(*key, reads=batch.reads[key], writes=batch.writes[key])
        Activity.objects.bulk_create(
            [Activity(vcluster_id=vcluster_id, last_request_at=at, last_username=username)
             for vcluster_id, (at, username) in batch.last.items()],
            update_conflicts=True, unique_fields=["vcluster"], update_fields=["last_request_at", "last_username"],
        )


def _add_counts(vcluster_id: int, day: date, *, reads: int, writes: int) -> None:
    rows = RequestCount.objects.filter(vcluster_id=vcluster_id, day=day)
    if not rows.update(reads=F("reads") + reads, writes=F("writes") + writes):
        # A concurrent first write of the day by another process fails this batch on the
        # unique constraint; it is retried whole, and then the update applies.
        RequestCount.objects.create(vcluster_id=vcluster_id, day=day, reads=reads, writes=writes)
