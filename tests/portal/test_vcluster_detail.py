"""What a vcluster's page and its API detail show beyond its steps: where it runs
(host cluster and namespace), its events (repairs, retries, failures), how long each
step took, and once Deleted the teardown receipt. The list stays lean."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning.models import Placement
from tests.portal.conftest import make_host, make_vcluster
from vclusters.models import EventKind, Phase, StepStatus, VClusterEvent, VClusterStep
from vclusters.templatetags.vcportal import seconds_text

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
RECEIPT = {
    "steps": [
        {"step": "Delete host namespace", "done": "Namespace vc-alpha-web and everything in it"},
        {"step": "Stop syncer and control plane", "done": "process kube-apiserver (pid 4242); state directory /var/vc/7"},
        {"step": "Verify nothing remains", "done": "no object labelled vcportal.io/vcluster-id=7 in any namespace"},
    ],
    "finished_at": "2026-11-26T10:00:05+00:00",
}


@pytest.fixture
def teammate(world):
    client = Client()
    client.force_login(world.teammate)
    return client


def provisioned(world, phase=Phase.READY, **placement):
    vcluster = make_vcluster(world.alpha, "web", phase=phase)
    Placement.objects.create(vcluster=vcluster, host_cluster=make_host("east"), host_namespace="vc-alpha-web", **placement)
    t0 = timezone.now() - timedelta(minutes=10)
    VClusterStep.objects.create(vcluster=vcluster, name="Host namespace", status=StepStatus.SUCCEEDED,
                                started_at=t0, finished_at=t0 + timedelta(milliseconds=2500), message="Namespace created")
    VClusterStep.objects.create(vcluster=vcluster, name="Control plane", status=StepStatus.SUCCEEDED,
                                started_at=t0, finished_at=t0 + timedelta(seconds=125), message="control plane started")
    VClusterStep.objects.create(vcluster=vcluster, name="Syncer", status=StepStatus.RUNNING, started_at=t0)
    VClusterEvent.objects.create(vcluster=vcluster, kind=EventKind.FAILURE, message="Control plane: timed out")
    VClusterEvent.objects.create(vcluster=vcluster, kind=EventKind.RETRY, message="Retried by teammate")
    VClusterEvent.objects.create(vcluster=vcluster, kind=EventKind.REPAIR, message="Repaired drift: ResourceQuota")
    return vcluster


def test_the_api_detail_shows_placement_events_durations_and_receipt(api, world):
    vcluster = provisioned(world)
    body = api("viewer").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert body["placement"] == {"host_cluster": "east", "host_namespace": "vc-alpha-web", "runtime": "local"}
    assert [(e["kind"], e["message"]) for e in body["events"]] == [
        ("repair", "Repaired drift: ResourceQuota"), ("retry", "Retried by teammate"), ("failure", "Control plane: timed out")]
    assert all(e["created_at"] for e in body["events"])
    assert [s["duration"] for s in body["steps"]] == [2.5, 125.0, None]
    assert body["receipt"] is None
    Placement.objects.filter(vcluster=vcluster).update(receipt=RECEIPT)
    assert api("viewer").get(f"/api/v1/vclusters/{vcluster.pk}/").json()["receipt"] == RECEIPT


def test_the_api_detail_names_the_runtime_the_vcluster_was_placed_with(api, world):
    vcluster = provisioned(world, runtime="kubernetes")
    Placement.objects.filter(vcluster=vcluster).update(control_plane_state='{"ca": "s3cr3t-ca"}')
    body = api("viewer").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert body["placement"] == {"host_cluster": "east", "host_namespace": "vc-alpha-web", "runtime": "kubernetes"}
    assert "control_plane_state" not in str(body) and "s3cr3t" not in str(body)


def test_the_api_detail_of_an_unplaced_vcluster_says_so(api, world):
    vcluster = make_vcluster(world.alpha, "web")
    body = api("teammate").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert (body["placement"], body["events"], body["receipt"], body["steps"]) == (None, [], None, [])


def test_the_list_stays_lean(api, world):
    provisioned(world)
    row = api("teammate").get("/api/v1/vclusters/").json()["results"][0]
    assert not {"placement", "events", "receipt", "steps"} & set(row)


def test_the_api_detail_costs_the_same_queries_however_many_events_and_steps(api, world):
    vcluster = provisioned(world)
    client = api("teammate")
    client.get(f"/api/v1/vclusters/{vcluster.pk}/")  # the token's last-used stamp is written on first use only

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/api/v1/vclusters/{vcluster.pk}/").status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    few = queries()
    for i in range(10):
        VClusterEvent.objects.create(vcluster=vcluster, kind=EventKind.REPAIR, message=f"repair {i}")
        VClusterStep.objects.create(vcluster=vcluster, name=f"step {i}")
    many = queries()
    assert len(many) == len(few), "\n".join(many)
    assert not any("kubeconfig" in q and "provisioning_hostcluster" in q for q in many), "decrypts the host's kubeconfig"


def test_the_page_shows_where_it_runs_its_events_and_step_durations(teammate, world):
    vcluster = provisioned(world)
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    placement = page[page.index('id="placement"'):]
    assert "east" in placement[:400] and "vc-alpha-web" in placement[:400]
    assert 'class="step-duration" title="finished − started">2.5 s<' in page
    assert ">2 min 5 s<" in page
    events = page[page.index('id="events"'):]
    assert events.index("Repaired drift") < events.index("Retried by teammate") < events.index("Control plane: timed out")
    assert events.count("<time") == 3
    assert "Teardown receipt" not in page


def test_the_page_polls_with_placement_and_events_in_the_fragment(teammate, world):
    vcluster = provisioned(world, phase=Phase.PROVISIONING)
    fragment = teammate.get(f"/vclusters/{vcluster.pk}/", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="live-status"') and 'hx-trigger="every 2s"' in fragment
    assert "vc-alpha-web" in fragment and 'id="events"' in fragment


def test_a_deleted_vcluster_shows_its_teardown_receipt(teammate, world):
    vcluster = provisioned(world, phase=Phase.DELETED, receipt=RECEIPT)
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    receipt = page[page.index('<section class="card receipt"'):]
    receipt = receipt[:receipt.index("</section>")]
    assert "<h3 id=\"receipt-title\">Teardown receipt</h3>" in receipt
    for item in RECEIPT["steps"]:
        assert item["step"] in receipt and item["done"] in receipt
    assert receipt.index("Delete host namespace") < receipt.index("Stop syncer") < receipt.index("Verify nothing remains")
    assert "east" in receipt
    assert "Removed with the vcluster." in page and "Download kubeconfig" not in page


def test_a_receipt_is_shown_as_text_not_markup(teammate, world):
    vcluster = provisioned(world, phase=Phase.DELETED,
                           receipt={"steps": [{"step": "<b>x</b>", "done": "<script>alert(1)</script>"}], "finished_at": "x"})
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_deleted_vcluster_that_was_never_placed_says_nothing_had_to_be_removed(teammate, world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.DELETED)
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    assert "Teardown receipt" in page and "never placed on a host cluster, so there was nothing to remove" in page


def test_a_removed_host_cluster_is_named_as_such(teammate, api, world):
    vcluster = provisioned(world, phase=Phase.DELETED, receipt=RECEIPT)
    Placement.objects.filter(vcluster=vcluster).update(host_cluster=None)
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    assert "(removed since)" in page and "vc-alpha-web" in page and "Teardown receipt" in page
    detail = api("teammate").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert detail["placement"] == {"host_cluster": None, "host_namespace": "vc-alpha-web", "runtime": "local"}
    assert detail["receipt"] == RECEIPT


@pytest.mark.parametrize("seconds, text", [
    (0.0441, "44 ms"), (0.9994, "999 ms"), (0.9996, "1.0 s"), (2.46, "2.5 s"), (12.4, "12 s"), (60, "1 min"), (125, "2 min 5 s"), (3600, "1 h"), (3780, "1 h 3 min"),
])
def test_durations_read_naturally(seconds, text):
    assert seconds_text(seconds) == text
