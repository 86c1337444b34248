import pytest
import yaml
from django.test import Client

from accounts.models import Membership, Team
from tests.portal.conftest import PASSWORD, make_vcluster
from vclusters.models import Phase, VCluster, VClusterStep

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def teammate(world):
    client = Client()
    client.force_login(world.teammate)
    return client


def test_it_logs_in_with_a_password_and_out(world):
    client = Client(enforce_csrf_checks=False)
    r = client.post("/accounts/login/", {"username": "teammate", "password": PASSWORD})
    assert r.status_code == 302 and r["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_it_rejects_a_wrong_password(world):
    r = Client().post("/accounts/login/", {"username": "teammate", "password": "nope"})
    assert r.status_code == 200
    assert b"correct username and password" in r.content


def test_the_dashboard_polls_only_while_something_is_in_progress(teammate, world):
    vcluster = make_vcluster(world.alpha, "web")
    page = teammate.get("/").content.decode()
    assert 'hx-trigger="every 3s"' in page and "web" in page
    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.READY)
    assert 'hx-trigger="every 3s"' not in teammate.get("/").content.decode()


def test_the_dashboard_answers_htmx_with_the_table_fragment_only(teammate, world):
    make_vcluster(world.alpha, "web")
    r = teammate.get("/", **HTMX)
    body = r.content.decode()
    assert body.lstrip().startswith('<div id="vcluster-table"')
    assert "<html" not in body
    assert "HX-Request" in r["Vary"]


def test_the_dashboard_filters_by_team_and_phase(teammate, world):
    make_vcluster(world.alpha, "web")
    make_vcluster(world.alpha, "gone", phase=Phase.DELETED)
    assert b"gone" not in teammate.get("/").content
    assert b"gone" in teammate.get("/?phase=Deleted").content
    assert b"web" not in teammate.get("/?phase=Ready").content


def test_the_detail_page_polls_steps_until_the_phase_settles(teammate, world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.PROVISIONING)
    VClusterStep.objects.create(vcluster=vcluster, name="Create namespace", status="Running", message="working")
    fragment = teammate.get(f"/vclusters/{vcluster.pk}/", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<section id="live-status"')
    assert 'hx-trigger="every 2s"' in fragment and "Create namespace" in fragment
    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.FAILED)
    fragment = teammate.get(f"/vclusters/{vcluster.pk}/", **HTMX).content.decode()
    assert "hx-trigger" not in fragment and "Failed" in fragment


def test_the_detail_page_offers_the_kubeconfig_once_ready(teammate, world):
    vcluster = make_vcluster(world.alpha, "web", phase=Phase.READY, kubeconfig="apiVersion: v1\n")
    page = teammate.get(f"/vclusters/{vcluster.pk}/").content.decode()
    assert "kubectl --kubeconfig ~/Downloads/alpha-web-teammate.kubeconfig get ns" in page
    assert f"/vclusters/{vcluster.pk}/kubeconfig/" in page
    personal = yaml.safe_load(teammate.get(f"/vclusters/{vcluster.pk}/kubeconfig/").content)
    assert personal["clusters"][0]["cluster"]["server"].endswith(f"/kube/vclusters/{vcluster.pk}")


def test_the_create_form_redirects_htmx_to_the_new_vcluster(teammate, world):
    r = teammate.post("/vclusters/new/", {"team": "alpha", "name": "fresh", "kubernetes_version": "v1.37.2",
                                          "cpu": "500m", "memory": "1Gi", "storage": "5Gi", "pods": "20"}, **HTMX)
    vcluster = VCluster.objects.get(name="fresh")
    assert r.status_code == 200 and r["HX-Redirect"] == f"/vclusters/{vcluster.pk}/"
    assert (vcluster.cpu_millicores, vcluster.memory_bytes, vcluster.created_by) == (500, 2**30, world.teammate)


def test_the_create_form_shows_the_headroom(teammate, world):
    make_vcluster(world.alpha, "web", cpu_millicores=1500)
    page = teammate.get("/vclusters/new/").content.decode()
    assert "Headroom in Alpha" in page and "6500m" in page
    fragment = teammate.get("/vclusters/new/headroom/?team=alpha").content.decode()
    assert fragment.lstrip().startswith('<aside id="headroom"') and "6500m" in fragment


def test_the_create_form_reports_quota_errors_on_the_field(teammate, world):
    Team.objects.filter(pk=world.alpha.pk).update(max_vclusters=0)
    r = teammate.post("/vclusters/new/", {"team": "alpha", "name": "x", "kubernetes_version": "v1.37.2",
                                          "cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": "1"})
    assert r.status_code == 400
    assert b"max_vclusters exhausted" in r.content
    assert not VCluster.objects.exists()


def test_deleting_asks_for_confirmation_then_deletes(teammate, world):
    vcluster = make_vcluster(world.alpha, "web")
    assert b"cannot be undone" in teammate.get(f"/vclusters/{vcluster.pk}/delete/").content
    r = teammate.post(f"/vclusters/{vcluster.pk}/delete/")
    assert r.status_code == 302
    assert VCluster.objects.get(pk=vcluster.pk).phase in {Phase.DELETING, Phase.DELETED}


def test_the_team_page_shows_members_and_usage(teammate, world):
    make_vcluster(world.alpha, "web", cpu_millicores=4000)
    page = teammate.get("/teams/alpha/").content.decode()
    assert all(name in page for name in ["owner", "teammate", "viewer"])
    assert 'aria-valuenow="50"' in page and "4 <span" in page
    assert "member-add" not in page and "Add a member" not in page


def test_team_admins_manage_members_on_the_team_page(world):
    client = Client()
    client.force_login(world.owner)
    assert b"Add a member" in client.get("/teams/alpha/").content
    client.post("/teams/alpha/members/", {"username": "outsider", "role": "viewer"})
    assert Membership.objects.get(team=world.alpha, user=world.outsider).role == "viewer"


def test_platform_admins_edit_quotas_and_create_teams_in_the_portal(world):
    client = Client()
    client.force_login(world.staff)
    form = client.get("/teams/alpha/quota/").content.decode()
    assert 'value="8"' in form and 'value="16Gi"' in form
    r = client.post("/teams/alpha/quota/", {"max_vclusters": "7", "cpu": "12", "memory": "24Gi", "storage": "1Ti", "pods": "300"})
    assert r.status_code == 302
    assert Team.objects.get(pk=world.alpha.pk).quota() == {
        "max_vclusters": 7, "cpu_millicores": 12_000, "memory_bytes": 24 * 2**30, "storage_bytes": 2**40, "pods": 300}
    r = client.post("/teams/alpha/quota/", {"max_vclusters": "7", "cpu": "-1", "memory": "24Gi", "storage": "1Ti", "pods": "300"})
    assert r.status_code == 400 and b"must not be negative" in r.content
    assert client.post("/teams/", {"name": "Platform"}).status_code == 302
    assert Team.objects.filter(slug="platform").exists()


def test_the_audit_log_page_lists_events(world, api):
    api("owner").post("/api/v1/vclusters/", {"team": "alpha", "name": "audited"}, format="json")
    client = Client()
    client.force_login(world.owner)
    page = client.get("/audit/").content.decode()
    assert "vcluster.create" in page and "audited" in page


def test_pages_carry_csrf_for_htmx(teammate):
    page = teammate.get("/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    assert "/static/js/htmx.min.js" in page
