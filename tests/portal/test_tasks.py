"""The provisioning tasks as the portal sees them, without any host cluster: the first
step fails fast with an actionable message, nothing is ever reported Ready, duplicate
runs are harmless, and a never-placed vcluster is deleted at once. The tasks take a
Redis lock per vcluster, so these tests need the Redis at REDIS_URL."""

import pytest

from accounts.audit import Actor
from provisioning import tasks
from provisioning.models import Placement
from tests.portal.conftest import make_host, make_vcluster
from vclusters import services
from vclusters.models import EventKind, Phase, StepStatus, VCluster, VClusterEvent, VClusterStep

pytestmark = pytest.mark.django_db

NO_HOST = "No enabled host cluster is open to team Alpha; a platform admin must register or enable one."


def test_it_fails_fast_without_a_host_cluster(world):
    vcluster = make_vcluster(world.alpha, "web")
    tasks.provision_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.message) == (Phase.FAILED, NO_HOST)
    step = VClusterStep.objects.get(vcluster=vcluster)
    assert (step.name, step.status, step.message) == ("Host namespace", StepStatus.FAILED, NO_HOST)
    assert step.started_at <= step.finished_at
    assert list(VClusterEvent.objects.filter(vcluster=vcluster).values_list("kind", "message")) == [
        (EventKind.FAILURE, NO_HOST)
    ]
    assert not Placement.objects.exists()
    assert vcluster.kubeconfig == ""


@pytest.mark.parametrize("host", [
    {"enabled": False},  # registered but disabled
    {"teams": "beta"},   # open to another team only
])
def test_it_fails_fast_when_no_host_cluster_is_open_to_the_team(world, host):
    teams = host.pop("teams", None)
    made = make_host("east", **host)
    if teams:
        made.teams.set([world.beta])
    vcluster = make_vcluster(world.alpha, "web")
    tasks.provision_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.message) == (Phase.FAILED, NO_HOST)


def test_running_provisioning_twice_changes_nothing_more(world):
    vcluster = make_vcluster(world.alpha, "web")
    tasks.provision_vcluster(vcluster.pk)
    tasks.provision_vcluster(vcluster.pk)  # a duplicate delivery finds it Failed and leaves it
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.FAILED
    assert vcluster.steps.count() == 1
    assert VClusterEvent.objects.filter(vcluster=vcluster).count() == 1


def test_provisioning_ignores_vclusters_no_longer_pending(world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.DELETING)
    tasks.provision_vcluster(vcluster.pk)
    tasks.provision_vcluster(10**9)  # gone: nothing to do
    assert not vcluster.steps.exists()
    assert VCluster.objects.get(pk=vcluster.pk).phase == Phase.DELETING


def test_teardown_of_a_never_placed_vcluster_deletes_it_at_once(world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.DELETING, kubeconfig="apiVersion: v1\n")
    tasks.teardown_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.kubeconfig, vcluster.message) == (Phase.DELETED, "", "")
    assert vcluster.deleted_at is not None


def test_teardown_leaves_vclusters_that_are_not_deleting_alone(world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.READY, kubeconfig="apiVersion: v1\n")
    tasks.teardown_vcluster(vcluster.pk)
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.kubeconfig) == (Phase.READY, "apiVersion: v1\n")


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



def test_the_reconcile_resumes_work_but_leaves_failed_teardowns_for_a_person(world):
    """A DeleteFailed vcluster waits for Retry: the periodic reconcile does not retry it
    forever behind everyone's back, while it does resume a Deleting one."""
    deleting = make_vcluster(world.alpha, "going", phase=Phase.DELETING)
    stuck = make_vcluster(world.alpha, "stuck", phase=Phase.DELETE_FAILED, message="namespace still terminating")

    tasks.reconcile_all()

    deleting.refresh_from_db()
    stuck.refresh_from_db()
    assert deleting.phase == Phase.DELETED, "the reconcile ran and resumed the teardown"
    assert (stuck.phase, stuck.message) == (Phase.DELETE_FAILED, "namespace still terminating")
    assert not VClusterEvent.objects.filter(vcluster=stuck).exists()
