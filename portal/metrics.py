"""The portal's Prometheus metrics (docs/metrics.md).

Web and gateway: every HTTP request, by surface (pages, api, gateway), method and status,
and the seconds until its response starts (a watch or an exec stream runs on for hours;
what a user waits for is its start), recorded by `Metrics`, the ASGI wrapper around the
whole application, which also serves `/metrics`. uvicorn runs several processes, so with
PROMETHEUS_MULTIPROC_DIR set they share their counts through files there, as
prometheus_client's multiprocess mode does. At each scrape the web also reads what is
the same from every process: vclusters by phase (the database) and the tasks waiting in
Celery's queue (Redis).

Worker: each provisioning and teardown step's duration and outcome, and create-to-Ready,
served on its own address (VCPORTAL_WORKER_METRICS_ADDRESS) by `serve_worker_metrics`.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily

PATH = "/metrics"
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

REQUESTS = Counter("vcportal_http_requests", "HTTP requests answered, by surface (pages, api, gateway), method "
                   "and status.", ["surface", "method", "status"])
RESPONSE_SECONDS = Histogram("vcportal_http_response_seconds", "Seconds from a request to the start of its "
                             "response, by surface.", ["surface"],
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STEP_SECONDS = Histogram("vcportal_step_duration_seconds", "Seconds one run of a provisioning or teardown step "
                         "took, by step and outcome (succeeded, retrying, failed).", ["step", "outcome"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300))
CREATE_TO_READY = Histogram("vcportal_create_to_ready_seconds", "Seconds from a vcluster's creation to Ready.",
                            buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600))


def surface(path: str) -> str:
    if path.startswith("/kube/"):
        return "gateway"
    return "api" if path.startswith("/api/") else "pages"


class PortalCollector:
    """What every process would report alike, read once per scrape."""

    def collect(self):
        from django.db.models import Count

        from vclusters.lifecycle import Phase
        from vclusters.models import VCluster

        counts = dict(VCluster.objects.order_by().values_list("phase").annotate(Count("pk")))
        phases = GaugeMetricFamily("vcportal_vclusters", "vclusters by phase.", labels=["phase"])
        for phase in Phase:
            phases.add_metric([phase.value], counts.get(phase, 0))
        yield phases
        queued = GaugeMetricFamily("vcportal_queue_depth", "Celery tasks waiting for a worker.", labels=["queue"])
        queued.add_metric(["celery"], _queue_depth("celery"))
        yield queued


def _queue_depth(queue: str) -> int:
    import redis

    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as connection:
        return connection.llen(queue)


def exposition() -> bytes:
    """What /metrics answers: every process's counts and the shared figures."""
    registry = CollectorRegistry()
    if MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, RESPONSE_SECONDS):
            registry.register(collector)
    registry.register(PortalCollector())
    return generate_latest(registry)


def authorized(headers: list[tuple[bytes, bytes]]) -> bool:
    """With VCPORTAL_METRICS_TOKEN set (the chart always sets one), only a scraper that
    presents it as a bearer token reads /metrics: the web port is also the Ingress's."""
    token = settings.VCPORTAL_METRICS_TOKEN
    if not token:
        return True
    given = dict(headers).get(b"authorization", b"")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


class Metrics:
    """The ASGI wrapper: answers /metrics, counts and times every other request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == PATH:
            return await self._serve(scope, send)
        started, where = time.monotonic(), surface(scope["path"])

        async def timed_send(message):
            if message["type"] == "http.response.start":
                RESPONSE_SECONDS.labels(where).observe(time.monotonic() - started)
                REQUESTS.labels(where, scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, timed_send)

    async def _serve(self, scope, send):
        from asgiref.sync import sync_to_async

        if not authorized(scope["headers"]):
            status, body, kind = 401, b"a bearer token is required\n", "text/plain"
        else:
            status, body, kind = 200, await sync_to_async(exposition)(), CONTENT_TYPE_LATEST
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def serve_worker_metrics(address: str) -> None:
    """The worker's step and create-to-Ready figures on `address:port` (one process)."""
    host, _, port = address.rpartition(":")
    try:
        start_http_server(int(port), addr=host, registry=REGISTRY)
    except OSError as exc:  # the worker works on without them
        logging.getLogger(__name__).warning("no metrics on %s: %s", address, exc)
