"""The placeholder lifecycle tasks: idempotent, and never claiming work that was not done."""

import pytest

from accounts.audit import Actor
from tests.portal.conftest import make_vcluster
from vclusters import services, tasks
from vclusters.models import Phase, StepStatus, VCluster, VClusterStep

pytestmark = pytest.mark.django_db


def test_provisioning_twice_records_one_step_and_stays_pending(world):
    vcluster = make_vcluster(world.alpha, "web")
    tasks.provision_vcluster(vcluster.pk)
    tasks.provision_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.PENDING
    assert vcluster.steps.count() == 1


def test_provisioning_ignores_vclusters_no_longer_pending(world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.DELETING)
    tasks.provision_vcluster(vcluster.pk)
    tasks.provision_vcluster(10**9)  # gone: nothing to do
    assert not vcluster.steps.exists()


def test_teardown_keeps_deleting_when_provisioning_did_something(world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.DELETING)
    VClusterStep.objects.create(vcluster=vcluster, name="Create namespace", status=StepStatus.SUCCEEDED)
    tasks.teardown_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.DELETING
    assert "not implemented" in vcluster.message


def test_deleting_twice_is_refused(world, django_capture_on_commit_callbacks):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.READY)
    services.delete_vcluster(Actor(world.teammate), vcluster)
    with pytest.raises(Exception, match="already deleting"):
        services.delete_vcluster(Actor(world.teammate), VCluster.objects.get(pk=vcluster.pk))


def test_a_broker_outage_does_not_fail_the_request(world, django_capture_on_commit_callbacks, monkeypatch, caplog):
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.provision_vcluster, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        vcluster = services.create_vcluster(Actor(world.teammate), world.alpha, name="web")
    assert VCluster.objects.get(pk=vcluster.pk).phase == Phase.PENDING
    assert "could not enqueue" in caplog.text
