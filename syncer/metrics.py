"""The syncer's Prometheus metrics, on its health port at /metrics (syncer.health;
docs/metrics.md). One process per vcluster, so prometheus_client's default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SYNC_LAG = Histogram(
    "vcportal_syncer_sync_lag_seconds",
    "Seconds from a change seen on either cluster to the end of the reconcile that brought the other in line "
    "(its copy on the host, or its status back in the vcluster), by kind.",
    ["kind"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ERRORS = Counter("vcportal_syncer_errors", "Reconciles that failed and are retried with backoff, by kind.", ["kind"])
QUEUE_DEPTH = Gauge("vcportal_syncer_queue_depth", "Keys waiting in a kind's work queue.", ["kind"])
