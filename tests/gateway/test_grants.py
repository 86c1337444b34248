"""The gateway's kept request checks (gateway.grants), on the real PostgreSQL: kept
between requests, forgotten as soon as a change to access commits, whoever makes it."""

import asyncio
import time

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from gateway.dbthreads import DatabaseThreads
from gateway.grants import Grants
from gateway.kubestatus import Refusal
from gateway.models import AccessToken
from gateway.services import issue_kubeconfig
from vclusters.models import Phase, VCluster

from tests.portal.conftest import require_postgresql

from .conftest import actor

pytestmark = pytest.mark.postgres


class CountingDatabase:
    """The gateway's database threads, counting the lookups that reach PostgreSQL."""

    def __init__(self):
        self.threads = DatabaseThreads(2)
        self.lookups = 0

    async def run(self, fn, *args):
        self.lookups += 1
        return await self.threads.run(fn, *args)


async def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _kept_then_forgotten(grants: Grants, db: CountingDatabase, token: str, vcluster_id: int, change) -> str:
    grants.start()
    await _until(lambda: grants.listening, "the listener")
    try:
        await grants.authorize(token, vcluster_id)
        await grants.authorize(token, vcluster_id)
        assert db.lookups == 1, "the second request was checked from memory"
        generation = grants._generation
        await sync_to_async(change, thread_sensitive=False)()
        await _until(lambda: grants._generation != generation, "the change's notification")
        with pytest.raises(Refusal) as refused:
            await grants.authorize(token, vcluster_id)
        assert db.lookups == 2
        return refused.value.message
    finally:
        await grants.stop()


@pytest.mark.parametrize("change, message", [
    (lambda: AccessToken.objects.update(revoked_at=timezone.now()), "revoked"),
    (lambda: AccessToken.objects.update(expires_at=timezone.now()), "expired"),
    (lambda: VCluster.objects.update(phase=Phase.DELETED), "has been deleted"),
    (lambda: connection.cursor().execute("DELETE FROM accounts_membership"), "is not a member"),
])
def test_a_kept_check_is_forgotten_when_any_writer_changes_access(world, ready, transactional_db, change, message):
    require_postgresql()
    token = yaml.safe_load(issue_kubeconfig(actor(world.teammate), ready, "https://portal"))["users"][0]["user"]["token"]
    db = CountingDatabase()
    try:
        refusal = asyncio.run(_kept_then_forgotten(Grants(db.run), db, token, ready.pk, change))
    finally:
        db.threads.stop()
    assert message in refusal


def test_nothing_is_kept_without_the_listener(world, ready, transactional_db):
    require_postgresql()
    token = yaml.safe_load(issue_kubeconfig(actor(world.teammate), ready, "https://portal"))["users"][0]["user"]["token"]
    db = CountingDatabase()

    async def twice():
        grants = Grants(db.run)  # never started: no listener
        for _ in range(2):
            await grants.authorize(token, ready.pk)

    try:
        asyncio.run(twice())
    finally:
        db.threads.stop()
    assert db.lookups == 2
