"""Celery tasks for vcluster lifecycles.

Provisioning is the subject of a later issue. Until it lands these tasks only record
that fact: a new vcluster stays Pending (it is never reported Ready without a
cluster behind it). Both tasks take only an id, lock the row, and do nothing unless
the vcluster is still in the phase they expect, so a duplicate delivery is harmless.
"""

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from .models import Phase, StepStatus, VCluster, VClusterStep

NOT_IMPLEMENTED_STEP = "Provisioning"
NOT_IMPLEMENTED_MESSAGE = (
    "Provisioning is not implemented in this version of vcportal yet; "
    "the vcluster stays Pending until it is."
)


@shared_task
def provision_vcluster(vcluster_id: int) -> None:
    with transaction.atomic():
        vcluster = VCluster.objects.select_for_update().filter(pk=vcluster_id, phase=Phase.PENDING).first()
        if vcluster is None:
            return
        VClusterStep.objects.get_or_create(
            vcluster=vcluster,
            name=NOT_IMPLEMENTED_STEP,
            defaults={"status": StepStatus.PENDING, "message": "Not started: there is no provisioning pipeline yet."},
        )
        VCluster.objects.filter(pk=vcluster.pk).update(message=NOT_IMPLEMENTED_MESSAGE)


@shared_task
def teardown_vcluster(vcluster_id: int) -> None:
    """Completes the deletion of a vcluster that never got any resources.

    Any step other than the placeholder above means provisioning did something, so
    there may be resources to remove; teardown of those is not implemented yet and
    the vcluster then stays Deleting rather than being reported Deleted."""
    with transaction.atomic():
        vcluster = VCluster.objects.select_for_update().filter(pk=vcluster_id, phase=Phase.DELETING).first()
        if vcluster is None:
            return
        now = timezone.now()
        if vcluster.steps.exclude(name=NOT_IMPLEMENTED_STEP).exists():
            VCluster.objects.filter(pk=vcluster.pk).update(
                message="Teardown of provisioned resources is not implemented yet; the vcluster stays Deleting."
            )
            return
        vcluster.steps.filter(name=NOT_IMPLEMENTED_STEP).update(status=StepStatus.SKIPPED, finished_at=now)
        VClusterStep.objects.create(
            vcluster=vcluster, name="Teardown", status=StepStatus.SUCCEEDED, started_at=now, finished_at=now,
            message="Nothing to remove: this vcluster was never provisioned.",
        )
        VCluster.objects.filter(pk=vcluster.pk, phase=Phase.DELETING).update(
            phase=Phase.DELETED, deleted_at=now, updated_at=now, message=""
        )
