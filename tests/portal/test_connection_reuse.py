"""Requests reuse connections to PostgreSQL and Redis (portal/settings.py, portal/cache.py).

Under ASGI each request has connection and cache objects of its own; without pools each
request opened (and closed) a PostgreSQL connection and a Redis connection, a large part
of its cost under load (docs/performance.md, "Load"). Each request here runs in a thread
of its own, so it too gets fresh objects, and ends as a request does."""

import threading

import pytest
from django.core.cache import caches
from django.db import close_old_connections, connection

from portal import settings as portal_settings
from tests.portal.conftest import require_postgresql


def _as_requests(work, count: int = 5) -> list:
    seen = []

    def request():
        try:
            seen.append(work())
        except Exception as exc:  # a failure in the thread fails the test, not just the thread
            seen.append(exc)
        close_old_connections()  # what request_finished does
        caches.close_all()

    for _ in range(count):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join(30)
    return seen


@pytest.mark.django_db(transaction=True)
def test_requests_take_their_postgresql_connection_from_a_pool():
    require_postgresql()

    def backend():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    assert len(set(_as_requests(backend))) == 1


def test_requests_share_one_redis_connection_pool(settings):
    settings.CACHES = portal_settings.CACHES  # the tests' conftest swaps in an in-process cache

    def client_id():
        cache = caches["default"]
        cache.get("connection-reuse-probe")
        return cache._cache.get_client().client_id()

    assert len(set(_as_requests(client_id))) == 1
