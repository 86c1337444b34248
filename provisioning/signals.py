"""Provisioning's side of the signals: vclusters asks for work (vclusters.signals),
the receivers here enqueue the Celery tasks; and a worker that starts reconciles at
once, so work a killed worker left half done is picked up without waiting for the
next periodic run."""

import logging

from celery.signals import worker_ready
from django.dispatch import receiver
from kombu.exceptions import OperationalError

from vclusters.signals import provision_requested, teardown_requested

logger = logging.getLogger(__name__)


# The tasks are imported when first needed: they load the pipeline, the runtime and
# the Kubernetes client, which a process that never enqueues need not load.


@receiver(provision_requested, dispatch_uid="provisioning.provision")
def provision_on_request(vcluster_id, **kwargs):
    from .tasks import provision_vcluster

    _enqueue(provision_vcluster, vcluster_id)


@receiver(teardown_requested, dispatch_uid="provisioning.teardown")
def teardown_on_request(vcluster_id, **kwargs):
    from .tasks import teardown_vcluster

    _enqueue(teardown_vcluster, vcluster_id)


def _enqueue(task, vcluster_id: int) -> None:
    try:
        task.delay(vcluster_id)
    except OperationalError:
        # The row is committed and stays in its phase; a later reconcile picks it up.
        logger.exception("could not enqueue %s for vcluster %s (is the broker up?)", task.name, vcluster_id)


@worker_ready.connect
def reconcile_on_start(**kwargs):
    from .tasks import reconcile_all

    reconcile_all.delay()
