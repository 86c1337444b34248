"""Retrying a Failed vcluster: a compare-and-set from Failed to Pending, so only a
Failed vcluster is retried and only once however many ask at the same moment; the
steps that succeeded stay, the failed one starts over; recorded as an event and in
the audit log; provisioning is enqueued once the transaction commits."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import AuditEvent, Membership, Role, Team
from provisioning import tasks
from tests.portal.conftest import make_user, make_vcluster, post_in_parallel, require_postgresql, token_for
from vclusters import services
from vclusters.models import EventKind, Phase, StepStatus, VCluster, VClusterEvent, VClusterStep

pytestmark = pytest.mark.django_db

NO_HOST = "No enabled host cluster is open to team Alpha; a platform admin must register or enable one."
FAILURE = "Control plane: kube-apiserver did not become ready within 90s"


def failed_with_steps(team):
    """A vcluster that got through two steps and failed at the third."""
    vcluster = make_vcluster(team, "web", phase=Phase.FAILED, message=FAILURE)
    t0 = timezone.now() - timedelta(minutes=5)
    for i, name in enumerate(["Host namespace", "Quota and limit range"]):
        VClusterStep.objects.create(vcluster=vcluster, name=name, status=StepStatus.SUCCEEDED, message="created",
                                    started_at=t0 + timedelta(seconds=i), finished_at=t0 + timedelta(seconds=i + 1))
    VClusterStep.objects.create(vcluster=vcluster, name="Control plane", status=StepStatus.FAILED, message=FAILURE,
                                started_at=t0 + timedelta(seconds=2), finished_at=t0 + timedelta(seconds=92))
    return vcluster


def steps(vcluster):
    return list(VClusterStep.objects.filter(vcluster=vcluster).values_list("name", "status", "started_at", "finished_at", "message"))


def test_it_resumes_at_the_failed_step(world, django_capture_on_commit_callbacks):
    vcluster = failed_with_steps(world.alpha)
    before = steps(vcluster)
    with django_capture_on_commit_callbacks() as callbacks:
        services.retry_vcluster(Actor(world.teammate, "10.0.0.9"), vcluster)
    assert len(callbacks) == 1  # provisioning is enqueued only once the retry is committed
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.message) == (Phase.PENDING, "")
    after = steps(vcluster)
    assert after[:2] == before[:2]  # Succeeded steps keep their status, times and messages
    assert after[2] == ("Control plane", StepStatus.PENDING, None, None, "")
    event = VClusterEvent.objects.get(vcluster=vcluster)
    assert (event.kind, event.message) == (EventKind.RETRY, f"Retried by teammate after: {FAILURE}")
    audit = AuditEvent.objects.get(action="vcluster.retry")
    assert (audit.actor, audit.ip_address, audit.team, audit.target_name, audit.data) == (
        world.teammate, "10.0.0.9", world.alpha, "web", {"failure": FAILURE})


def test_it_also_restarts_a_step_left_running_when_the_task_gave_up(world, django_capture_on_commit_callbacks):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.FAILED,
                             message="Gave up after repeated errors: Syncer: host API answered 503")
    VClusterStep.objects.create(vcluster=vcluster, name="Syncer", status=StepStatus.RUNNING, started_at=timezone.now(),
                                message="Retrying after: host API answered 503")
    services.retry_vcluster(Actor(world.teammate), vcluster)
    assert steps(vcluster) == [("Syncer", StepStatus.PENDING, None, None, "")]


def test_the_enqueued_run_fails_fast_again_without_a_host_cluster(world, django_capture_on_commit_callbacks):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.FAILED, message="earlier")
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_vcluster(Actor(world.owner), vcluster)
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.message) == (Phase.FAILED, NO_HOST)
    assert list(vcluster.events.values_list("kind", flat=True)) == [EventKind.FAILURE, EventKind.RETRY]


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.PROVISIONING, Phase.READY, Phase.DELETING, Phase.DELETED])
def test_it_retries_only_failed_vclusters_and_writes_nothing_otherwise(api, world, phase):
    vcluster = make_vcluster(world.alpha, "web", phase=phase, message="as it was")
    teammate = api("teammate")
    before = (AuditEvent.objects.count(), VClusterEvent.objects.count())
    r = teammate.post(f"/api/v1/vclusters/{vcluster.pk}/retry/")
    assert r.status_code == 400
    assert r.json()["errors"]["phase"] == [f"Only a Failed or DeleteFailed vcluster can be retried; web is {phase}."]
    assert (AuditEvent.objects.count(), VClusterEvent.objects.count()) == before
    vcluster.refresh_from_db()
    assert (vcluster.phase, vcluster.message) == (phase, "as it was")


def test_a_second_retry_and_a_retry_after_delete_are_refused(world, django_capture_on_commit_callbacks):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.FAILED)
    services.retry_vcluster(Actor(world.teammate), VCluster.objects.get(pk=vcluster.pk))
    with pytest.raises(Exception, match="web is Pending"):
        services.retry_vcluster(Actor(world.teammate), VCluster.objects.get(pk=vcluster.pk))
    other = make_vcluster(world.alpha, "other", phase=Phase.FAILED)
    services.delete_vcluster(Actor(world.teammate), other)
    with pytest.raises(Exception, match="other is Deleting"):
        services.retry_vcluster(Actor(world.teammate), VCluster.objects.get(pk=other.pk))
    assert VClusterEvent.objects.filter(kind=EventKind.RETRY).count() == 1


def test_viewers_cannot_retry(world):
    from django.core.exceptions import PermissionDenied

    vcluster = make_vcluster(world.alpha, "web", phase=Phase.FAILED)
    with pytest.raises(PermissionDenied):
        services.retry_vcluster(Actor(world.viewer), vcluster)
    assert VCluster.objects.get(pk=vcluster.pk).phase == Phase.FAILED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_retries_retry_once(settings, monkeypatch):
    require_postgresql()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    enqueued = []
    monkeypatch.setattr(tasks.provision_vcluster, "delay", enqueued.append)
    team = Team.objects.create(name="Race", slug="race")
    user = make_user("racer")
    Membership.objects.create(team=team, user=user, role=Role.MEMBER)
    vcluster = make_vcluster(team, "web", phase=Phase.FAILED, message="boom")
    parallel = 10
    responses = post_in_parallel(token_for(user), [(f"/api/v1/vclusters/{vcluster.pk}/retry/", None)] * parallel)
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [202] + [400] * (parallel - 1)
    assert enqueued == [vcluster.pk]
    assert VClusterEvent.objects.filter(vcluster=vcluster, kind=EventKind.RETRY).count() == 1
    assert AuditEvent.objects.filter(action="vcluster.retry").count() == 1


def test_the_page_offers_retry_next_to_the_failure_to_those_who_may(world, django_capture_on_commit_callbacks):
    vcluster = failed_with_steps(world.alpha)
    viewer, member = Client(), Client()
    viewer.force_login(world.viewer)
    member.force_login(world.teammate)
    page = member.get(f"/vclusters/{vcluster.pk}/").content.decode()
    failure = page[page.index('<div class="failure"'):]
    failure = failure[:failure.index("</div>")]
    assert FAILURE in failure and ">Retry</button>" in failure and f"/vclusters/{vcluster.pk}/retry/" in failure
    assert ">Retry</button>" not in viewer.get(f"/vclusters/{vcluster.pk}/").content.decode()
    r = member.post(f"/vclusters/{vcluster.pk}/retry/", follow=True)
    page = r.content.decode()
    assert "Retrying web" in page and ">Retry</button>" not in page
    assert 'data-phase="Pending"' in page and 'hx-trigger="every 2s"' in page
    r = member.post(f"/vclusters/{vcluster.pk}/retry/", follow=True)  # no longer Failed
    assert "Only a Failed or DeleteFailed vcluster can be retried" in r.content.decode()
