"""Celery tasks: each takes a vcluster id, holds that vcluster's lock while it works,
reconciles what is missing, and is safe to run twice or after a crash.

Celery's own retry limit is off (max_retries=None): a task waiting for a busy lock
retries as long as it takes, and transient errors give up after
VCPORTAL_MAX_TRANSIENT_RETRIES with the last error: provisioning becomes Failed,
teardown DeleteFailed, and the reconciler leaves both alone until Retry.

The lock is a Redis lock with a short TTL that a thread renews while the task runs,
so a worker killed mid-step releases it by expiry and another worker (or the same
one restarted) resumes. Transient errors retry with exponential backoff.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from portal.errors import is_database_unavailable
from portal.kubeapi import describe
from portal.locks import held_lock
from vclusters import lifecycle
from vclusters.lifecycle import Work
from vclusters.models import VCluster

from . import pipeline

logger = logging.getLogger(__name__)

LOCK_BUSY_COUNTDOWN = 2


def _backoff(retries: int) -> float:
    return min(2 ** retries, 30)


def _run_locked(task, vcluster_id: int, work) -> None:
    with held_lock(f"vcluster:{vcluster_id}", settings.VCPORTAL_VCLUSTER_LOCK_TTL) as lock:
        if lock is None:
            raise task.retry(countdown=LOCK_BUSY_COUNTDOWN)
        try:
            work(vcluster_id)
        except pipeline.Transient as exc:
            if task.request.retries >= settings.VCPORTAL_MAX_TRANSIENT_RETRIES:
                pipeline.give_up(vcluster_id, str(exc))
                return
            logger.info("vcluster %s: transient error, retrying: %s", vcluster_id, exc)
            raise task.retry(countdown=_backoff(task.request.retries)) from None
        except (OperationalError, InterfaceError) as exc:  # outside a step: writing a phase or record
            if not is_database_unavailable(exc):
                raise
            logger.info("vcluster %s: database unavailable, retrying: %s", vcluster_id, exc)
            raise task.retry(countdown=_backoff(task.request.retries)) from None


@shared_task(bind=True, acks_late=True, max_retries=None)
def provision_vcluster(self, vcluster_id: int) -> None:
    _run_locked(self, vcluster_id, pipeline.provision)


@shared_task(bind=True, acks_late=True, max_retries=None)
def teardown_vcluster(self, vcluster_id: int) -> None:
    _run_locked(self, vcluster_id, pipeline.teardown)


@shared_task(bind=True, acks_late=True, max_retries=None)
def repair_vcluster(self, vcluster_id: int) -> None:
    _run_locked(self, vcluster_id, _repair_or_log)


def _repair_or_log(vcluster_id: int) -> None:
    """A repair that fails now is tried again at the next reconcile."""
    try:
        pipeline.repair(vcluster_id)
    except Exception as exc:
        logger.warning("vcluster %s: repair failed: %s", vcluster_id, describe(exc))


@shared_task
def reconcile_all() -> None:
    """Periodic (Celery beat) and at worker start: every vcluster not at rest gets its
    task again, and Ready ones are checked for drift. One run at a time."""
    with held_lock("reconcile-all", settings.VCPORTAL_RECONCILE_INTERVAL) as lock:
        if lock is None:
            return
        task_for = {Work.PROVISION: provision_vcluster, Work.TEARDOWN: teardown_vcluster,
                    Work.REPAIR: repair_vcluster}
        for vcluster_id, phase in VCluster.objects.filter(phase__in=lifecycle.WORK).values_list("pk", "phase"):
            task_for[lifecycle.WORK[phase]].delay(vcluster_id)
