"""The controller's schedule: a Celery beat task, one pass at a time.

Beat rather than a long-lived watcher process: `make run` (a worker with embedded
beat) and docker-compose (its worker and beat services) run it with no new process
to start, supervise or restart, and a pass that finds nothing to do costs a few list
requests. The price is latency: a change is picked up within
VCPORTAL_GITOPS_INTERVAL seconds (5 by default) instead of at once; next to a
vcluster's own start (seconds) and a GitOps tool's sync interval (minutes), that
is small.
"""

import logging

from celery import shared_task
from django.conf import settings

from portal.kubeapi import describe, is_transient
from portal.locks import held_lock

from . import controller

logger = logging.getLogger(__name__)


@shared_task
def reconcile_virtual_clusters() -> None:
    cluster = settings.VCPORTAL_GITOPS_CLUSTER
    if not cluster:
        return
    # A pass still running (a slow API) makes the next ones return at once.
    with held_lock(f"gitops:{cluster}", settings.VCPORTAL_VCLUSTER_LOCK_TTL) as lock:
        if lock is None:
            return
        try:
            controller.reconcile(cluster)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # A stopped or busy management cluster: one line per pass, not a traceback.
            logger.warning("gitops: management cluster %s unreachable, trying again next pass: %s",
                           cluster, describe(exc))
