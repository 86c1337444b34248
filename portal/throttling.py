"""The API's throttles, kept in the cache (Redis), which may be down while the database
and the host clusters are not: a throttle that cannot reach its cache lets the request
through (logged, at most once a minute) rather than failing it with a 500. Reads,
kubeconfig downloads and the gateway keep working through a Redis restart; only the
rate limits pause."""

import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import throttling

logger = logging.getLogger(__name__)
CACHE_DOWN = (RedisConnectionError, RedisTimeoutError)
LOG_INTERVAL = 60.0
_last_logged = 0.0


class OpenWhenCacheIsDown:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except CACHE_DOWN as exc:
            _log_outage(exc)
            return True


def _log_outage(exc: Exception) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= LOG_INTERVAL:
        _last_logged = now
        logger.warning("API throttles paused: their cache is unreachable (%s)", exc)


class AnonRateThrottle(OpenWhenCacheIsDown, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(OpenWhenCacheIsDown, throttling.UserRateThrottle):
    pass
