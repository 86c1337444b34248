import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def serve_metrics(**_) -> None:
    """The worker's own metrics port (docs/metrics.md), once it takes tasks."""
    from django.conf import settings

    from portal.metrics import serve_worker_metrics

    if settings.VCPORTAL_WORKER_METRICS_ADDRESS:
        serve_worker_metrics(settings.VCPORTAL_WORKER_METRICS_ADDRESS)
