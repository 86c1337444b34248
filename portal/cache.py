"""One Redis connection pool per process for the cache.

Under ASGI, Django keeps a cache object per request context, and its Redis backend gives
each object a connection pool of its own: every API request opened a new connection to
Redis for its throttle check and closed it at the end (about a tenth of a request's time
under load). Pools are shared per URL and options instead, as django-redis does. redis-py's
pool notices a fork and starts afresh in the child."""

import threading

from redis import ConnectionPool


class SharedConnectionPool(ConnectionPool):
    _pools: dict[tuple, ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options) -> ConnectionPool:
        key = (url, tuple(sorted(options.items(), key=lambda item: item[0])))
        with cls._lock:
            if key not in cls._pools:
                cls._pools[key] = super().from_url(url, **options)
            return cls._pools[key]
