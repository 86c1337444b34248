"""Requests reuse their connections to Redis (portal/cache.py).

Under ASGI each request has cache objects of its own; without a shared pool each request
opened (and closed) a Redis connection for its throttle check, a tenth of its cost under
load (docs/performance.md, "Load"). Each request here runs in a thread of its own, so it
too gets fresh objects, and ends as a request does."""

import threading

from django.core.cache import caches
from django.db import close_old_connections

from portal import settings as portal_settings


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


def test_requests_share_one_redis_connection_pool(settings):
    settings.CACHES = portal_settings.CACHES  # the tests' conftest swaps in an in-process cache

    def client_id():
        cache = caches["default"]
        cache.get("connection-reuse-probe")
        return cache._cache.get_client().client_id()

    assert len(set(_as_requests(client_id))) == 1
