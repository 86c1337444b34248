"""A worker that starts reconciles at once: work a killed worker left half done is
picked up without waiting for the next periodic run."""

from celery.signals import worker_ready


@worker_ready.connect
def reconcile_on_start(**kwargs):
    from .tasks import reconcile_all

    reconcile_all.delay()
