"""A teardown that keeps failing stops in a visible phase, DeleteFailed, with an event;
the reconciler leaves it there, and Retry resumes teardown. With a real Celery worker
(and beat), the host cluster, and a finalizer that holds the host namespace. Part of
the runtime contract: on each runtime."""

import pytest
from django.test import Client
from kubernetes import client
from rest_framework.test import APIClient

from accounts.audit import Actor
from provisioning import pipeline
from vclusters.models import EventKind
from tests.kube.helpers import eventually
from tests.portal.conftest import make_vcluster
from vclusters import services
from vclusters.models import Phase, StepStatus, VCluster

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = "example.com/hold"


def _phase(vcluster_id) -> str:
    return VCluster.objects.values_list("phase", flat=True).get(pk=vcluster_id)


class Finalizer:
    """Keeps namespaces terminating until released, as a stuck controller would."""

    def __init__(self, core: client.CoreV1Api):
        self.core, self.held = core, []

    def hold(self, ns: str) -> None:
        self.core.patch_namespace(ns, {"metadata": {"finalizers": [HOLD]}})
        self.held.append(ns)

    def release(self) -> None:
        while self.held:
            self.core.patch_namespace(self.held.pop(), {"metadata": {"finalizers": None}})


@pytest.fixture
def finalizer(runtime_host):
    """Released before the worker fixture's own clean-up, which must see the namespace go."""
    finalizer = Finalizer(client.CoreV1Api(runtime_host.cluster.api_client()))
    yield finalizer
    finalizer.release()


def test_a_teardown_that_keeps_failing_is_shown_and_retry_finishes_it(
    world, host, celery_worker, finalizer, runtime_host, var_dir, settings
):
    settings.STORAGES = {**settings.STORAGES,  # the page, without collectstatic's manifest
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    # Host objects only (no runtime has this version), then held by a finalizer.
    vcluster = make_vcluster(world.alpha, "held", kubernetes_version="v1.30.0")
    pipeline.provision(vcluster.pk)
    ns = VCluster.objects.get(pk=vcluster.pk).placement.host_namespace
    core = client.CoreV1Api(runtime_host.cluster.api_client())
    finalizer.hold(ns)

    celery_worker.start(VCPORTAL_MAX_TRANSIENT_RETRIES="2", VCPORTAL_NAMESPACE_DELETE_TIMEOUT="1")
    services.delete_vcluster(Actor(world.teammate), vcluster)
    eventually(lambda: _phase(vcluster.pk) == Phase.DELETE_FAILED, timeout=120, interval=0.5,
               what="teardown to give up")

    api = APIClient()
    api.force_authenticate(world.teammate)
    body = api.get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert body["phase"] == "DeleteFailed"
    assert body["message"] == f"Gave up after repeated errors: namespace {ns} is still terminating"
    assert body["events"][0]["kind"] == EventKind.FAILURE and body["events"][0]["message"] == body["message"]
    steps = {s["name"]: s["status"] for s in body["steps"]}
    assert steps["Host namespace gone"] == StepStatus.FAILED
    browser = Client()
    browser.force_login(world.teammate)
    page = browser.get(f"/vclusters/{vcluster.pk}/").content.decode()
    assert 'data-phase="DeleteFailed"' in page and "still terminating" in page and ">Retry</button>" in page
    assert 'hx-trigger="every 2s"' not in page  # settled: nothing runs until someone retries

    finalizer.release()
    retried = api.post(f"/api/v1/vclusters/{vcluster.pk}/retry/")
    assert retried.status_code == 202 and retried.json()["phase"] == "Deleting"
    eventually(lambda: _phase(vcluster.pk) == Phase.DELETED, timeout=120, interval=0.5, what="teardown to finish")
    assert not any(n.metadata.name == ns for n in core.list_namespace().items)
    assert VCluster.objects.get(pk=vcluster.pk).placement.receipt["finished_at"]
