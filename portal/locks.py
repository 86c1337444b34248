"""Locks shared by every worker process: one Redis lock per piece of work (a vcluster,
a GitOps pass), so two workers never do the same work at once and a killed one hands
it over within the lock's TTL."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


@contextmanager
def held_lock(name: str, ttl: float):
    """A non-blocking Redis lock, renewed by a thread for as long as it is held, so
    a long step (a control plane starting on a busy machine) keeps it, and a killed
    process loses it within `ttl`. Yields the lock, or None if someone holds it."""
    # Not thread-local: the keeper thread renews the token this thread acquired.
    lock = redis.Redis.from_url(settings.REDIS_URL).lock(f"vcportal:{name}", timeout=ttl, thread_local=False)
    if not lock.acquire(blocking=False):
        yield None
        return
    done = threading.Event()
    keeper = threading.Thread(target=_keep, args=(lock, ttl, done), daemon=True)
    keeper.start()
    try:
        yield lock
    finally:
        done.set()
        keeper.join()
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("lock %s expired while held; work is idempotent, so this is safe", name)


def _keep(lock, ttl: float, done: threading.Event) -> None:
    while not done.wait(ttl / 3):
        try:
            lock.reacquire()
        except redis.exceptions.LockError:
            logger.warning("lost lock %s; another worker may resume this work", lock.name)
            return
        except redis.exceptions.ConnectionError:
            logger.warning("cannot renew lock %s: Redis unreachable", lock.name)
