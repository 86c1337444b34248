"""The issue's end-to-end API story: a platform admin's token creates a team, sets
its quota, and creates vclusters up to the quota and no further."""

import pytest
from django.core.management import call_command

from accounts.models import AuditEvent
from vclusters.models import Phase, VCluster, VClusterStep

pytestmark = pytest.mark.django_db

NO_HOST = "No enabled host cluster is open to team Alpha; a platform admin must register or enable one."


def test_it_runs_the_api_story(api, world, capsys):
    call_command("create_api_token", "staff", "--name", "ci")
    token = capsys.readouterr().out.strip()
    assert token.startswith("vcp_") and "\n" not in token
    from rest_framework.test import APIClient

    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    r = admin.post("/api/v1/teams/", {"name": "Gamma"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["slug"] == "gamma"

    quota = {"max_vclusters": 2, "cpu": "4", "memory": "8Gi", "storage": "50Gi", "pods": 200}
    r = admin.put("/api/v1/teams/gamma/quota/", quota, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["cpu"] == "4" and r.json()["memory"] == "8Gi"

    for name in ["one", "two"]:
        r = admin.post("/api/v1/vclusters/", {"team": "gamma", "name": name, "cpu": "1500m"}, format="json")
        assert r.status_code == 201, r.json()
        assert r.json()["phase"] == "Pending"
        assert r.json()["cpu"] == "1500m"

    r = admin.post("/api/v1/vclusters/", {"team": "gamma", "name": "three"}, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "quota_exceeded"
    assert "max_vclusters" in r.json()["message"]
    assert VCluster.objects.filter(team__slug="gamma").count() == 2

    vcluster_id = VCluster.objects.get(name="one").pk
    outsider = api("outsider")
    assert outsider.get(f"/api/v1/vclusters/{vcluster_id}/").status_code == 404
    assert outsider.get("/api/v1/teams/gamma/").status_code == 404
    assert outsider.get("/api/v1/teams/gamma/quota/").status_code == 404
    assert outsider.delete(f"/api/v1/vclusters/{vcluster_id}/").status_code == 404


def test_it_enqueues_provisioning_which_fails_fast_without_a_host_cluster(api, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = api("teammate").post("/api/v1/vclusters/", {"team": "alpha", "name": "dev"}, format="json")
    assert r.status_code == 201
    assert r.json()["phase"] == "Pending"
    assert len(callbacks) == 1
    vcluster = VCluster.objects.get(name="dev")
    assert vcluster.phase == Phase.FAILED
    assert vcluster.message == NO_HOST
    assert VClusterStep.objects.get(vcluster=vcluster).status == "Failed"
    assert AuditEvent.objects.filter(action="vcluster.create", target_id=str(vcluster.pk)).exists()

    detail = api("viewer").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert (detail["phase"], detail["message"], detail["placement"], detail["receipt"]) == ("Failed", NO_HOST, None, None)
    assert [(s["name"], s["status"], s["message"]) for s in detail["steps"]] == [("Host namespace", "Failed", NO_HOST)]
    assert [(e["kind"], e["message"]) for e in detail["events"]] == [("failure", NO_HOST)]

    # Retrying without a host cluster fails the same way, and says so again.
    with django_capture_on_commit_callbacks(execute=True):
        r = api("teammate").post(f"/api/v1/vclusters/{vcluster.pk}/retry/")
    assert r.status_code == 202
    assert r.json()["phase"] == "Pending"
    detail = api("teammate").get(f"/api/v1/vclusters/{vcluster.pk}/").json()
    assert (detail["phase"], detail["message"]) == ("Failed", NO_HOST)
    assert [e["kind"] for e in detail["events"]] == ["failure", "retry", "failure"]


def test_it_deletes_a_never_provisioned_vcluster_through_teardown(api, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        vcluster_id = api("teammate").post("/api/v1/vclusters/", {"team": "alpha", "name": "dev"}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = api("teammate").delete(f"/api/v1/vclusters/{vcluster_id}/")
    assert r.status_code == 202
    assert r.json()["phase"] == "Deleting"
    assert len(callbacks) == 1
    assert VCluster.objects.get(pk=vcluster_id).phase == Phase.DELETED
    # The name is free again, and a Deleted vcluster no longer counts against quota.
    r = api("teammate").post("/api/v1/vclusters/", {"team": "alpha", "name": "dev"}, format="json")
    assert r.status_code == 201
