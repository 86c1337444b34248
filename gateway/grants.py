"""The request check without a database round trip per request.

services.authorize reads the token, the person's role and the vcluster's phase from
PostgreSQL. Under load that round trip (a hop to a database thread, the query, the
row) was most of what the gateway added to a request. So the gateway keeps the rows
it read, per token digest, in memory for a few seconds
(VCPORTAL_GATEWAY_GRANT_CACHE_SECONDS, at most MAX_ENTRIES of them) and judges a kept
row again on every use with services.grant_for (expiry included).

Kept rows are forgotten, all at once, as soon as anything they depend on changes:
triggers on tokens, memberships, users, teams and vclusters (migration
0002_access_change_notify) NOTIFY `vcportal_gateway_access` when such a change commits,
and a connection of the gateway's own LISTENs and clears the cache. Triggers rather
than Django signals, so that every writer counts: queryset.update(), the admin, another
process, raw SQL. A notification arrives within a millisecond or so of the commit, so
a revoked token, a removed member, a lowered role or a deleted vcluster is refused on
the next request. Rows are kept only while the listener is connected (never on SQLite,
never while PostgreSQL is unreachable): then every request is checked in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import psycopg
from django.conf import settings
from django.db import connections

from accounts.models import hash_token

from .background import cancel_and_wait
from .services import Grant, grant_for, lookup

logger = logging.getLogger(__name__)

CHANNEL = "vcportal_gateway_access"
MAX_ENTRIES = 10_000
RECONNECT_SECONDS = 1.0


class Grants:
    def __init__(self, run_in_db):
        self._run_in_db = run_in_db
        self.ttl = settings.VCPORTAL_GATEWAY_GRANT_CACHE_SECONDS
        self._rows: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        # Bumped by every notification: a lookup that started before one is not kept,
        # since it may have read what the change replaced.
        self._generation = 0
        self.listening = False
        self._task: asyncio.Task | None = None

    async def authorize(self, token: str, vcluster_id: int | None) -> Grant:
        """The Grant for `token` on `vcluster_id`; None: on the vcluster it was issued for."""
        digest = hash_token(token)
        row = self._kept(digest)
        if row is None:
            generation = self._generation
            row = await self._run_in_db(lookup, digest)
            if row is not None and self.listening and generation == self._generation:
                self._keep(digest, row)
        if vcluster_id is None and row is not None:
            vcluster_id = row["vcluster_id"]
        return grant_for(row, vcluster_id)

    def forget_all(self) -> None:
        self._generation += 1
        self._rows.clear()

    def _kept(self, digest: str) -> dict | None:
        kept = self._rows.get(digest)
        if kept is None or not self.listening:
            return None
        if time.monotonic() - kept[0] >= self.ttl:
            del self._rows[digest]
            return None
        return kept[1]

    def _keep(self, digest: str, row: dict) -> None:
        self._rows[digest] = (time.monotonic(), row)
        self._rows.move_to_end(digest)
        while len(self._rows) > MAX_ENTRIES:
            self._rows.popitem(last=False)

    # The listener ---------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self.ttl > 0 and connections["default"].vendor == "postgresql":
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                logger.warning("gateway: lost the access-change listener (%s); checking every request in the "
                               "database until it is back", type(exc).__name__)
            finally:
                self.listening = False
                self.forget_all()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.forget_all()
            self.listening = True
            async for _ in conn.notifies():
                self.forget_all()


def _conninfo() -> str:
    db = connections["default"].settings_dict
    params = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
              "port": db["PORT"]}
    return psycopg.conninfo.make_conninfo(**{key: value for key, value in params.items() if value})
