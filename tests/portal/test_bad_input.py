"""Bad input is answered 400 with a message and per-field errors, and writes nothing."""

import json

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, Team
from tests.portal.conftest import make_vcluster
from vclusters.models import VCluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def teammate(api):
    return api("teammate")


def assert_rejected(response, field, *, counts_before):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["message"]
    assert field in body["errors"], body
    assert all(isinstance(m, str) for m in body["errors"][field])
    assert (VCluster.objects.count(), AuditEvent.objects.count()) == counts_before


def counts():
    return VCluster.objects.count(), AuditEvent.objects.count()


@pytest.mark.parametrize("name", [
    "UPPER", "-leading", "trailing-", "under_score", "dots.in.name", "spa ce", "ünïcode", "a" * 41, "", "   ",
])
def test_it_rejects_bad_names(teammate, name):
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": name}, format="json")
    assert_rejected(r, "name", counts_before=before)


def test_it_accepts_a_forty_character_name(teammate):
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "a" * 40, "cpu": "1"}, format="json")
    assert r.status_code == 201


def test_it_rejects_a_duplicate_name_in_the_same_team(teammate, world):
    make_vcluster(world.alpha, "web")
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "web"}, format="json")
    assert_rejected(r, "name", counts_before=before)


def test_it_allows_the_same_name_in_another_team(api, world):
    make_vcluster(world.alpha, "web")
    r = api("outsider").post("/api/v1/vclusters/", {"team": "beta", "name": "web"}, format="json")
    assert r.status_code == 201


def test_it_rejects_an_unknown_kubernetes_version(teammate):
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "x", "kubernetes_version": "v1.2.3"}, format="json")
    assert_rejected(r, "kubernetes_version", counts_before=before)
    assert "v1.37.2" in r.json()["errors"]["kubernetes_version"][0]


@pytest.mark.parametrize("field, value", [
    ("cpu", "-1"), ("cpu", "0"), ("cpu", "abc"), ("cpu", "1e9"), ("cpu", "0.1m"), ("cpu", ["1"]),
    ("memory", "-4Gi"), ("memory", "1e30"), ("memory", "999999Ti"), ("memory", "4GB"), ("memory", "0.5"),
    ("storage", "-10Gi"), ("storage", "100Ei"), ("storage", {"size": "1Gi"}),
    ("pods", -5), ("pods", 0), ("pods", "1.5"), ("pods", "10k"), ("pods", 10**12), ("pods", True),
])
def test_it_rejects_bad_quantities(teammate, field, value):
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "x", field: value}, format="json")
    assert_rejected(r, field, counts_before=before)


def test_it_reports_every_bad_field_at_once(teammate):
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "Bad!", "cpu": "-1", "memory": "lots"}, format="json")
    assert_rejected(r, "name", counts_before=before)
    assert {"name", "cpu", "memory"} <= set(r.json()["errors"])


@pytest.mark.parametrize("body, field", [({"name": "x"}, "team"), ({"team": "alpha"}, "name"), ({"team": "nope", "name": "x"}, "team")])
def test_it_rejects_missing_or_unknown_team_and_name(teammate, body, field):
    before = counts()
    assert_rejected(teammate.post("/api/v1/vclusters/", body, format="json"), field, counts_before=before)


def test_it_rejects_unknown_fields(world):
    from accounts.audit import Actor
    from django.core.exceptions import ValidationError
    from vclusters.services import create_vcluster

    with pytest.raises(ValidationError) as exc:
        create_vcluster(Actor(world.teammate), world.alpha, name="x", gpus="8")
    assert "gpus" in exc.value.message_dict


@pytest.mark.parametrize("raw", [b"{", b"{\"team\": \"alpha\", \"name\": }", b"\xff\xfe", b"[1, 2", b"null x"])
def test_it_rejects_malformed_json(teammate, raw):
    before = counts()
    r = teammate.generic("POST", "/api/v1/vclusters/", raw, content_type="application/json")
    assert_rejected(r, "body", counts_before=before)


@pytest.mark.parametrize("raw", [b"[]", b"\"a string\"", b"42"])
def test_it_rejects_json_that_is_not_an_object(teammate, raw):
    before = counts()
    r = teammate.generic("POST", "/api/v1/vclusters/", raw, content_type="application/json")
    assert_rejected(r, "non_field_errors", counts_before=before)


def test_it_rejects_oversized_bodies(teammate, settings):
    before = counts()
    body = json.dumps({"team": "alpha", "name": "x", "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    r = teammate.generic("POST", "/api/v1/vclusters/", body, content_type="application/json")
    assert_rejected(r, "body", counts_before=before)
    assert r.json()["code"] == "body_too_large"


def test_it_rejects_an_oversized_form_post(world):
    client = Client()
    client.force_login(world.teammate)
    before = counts()
    r = client.post("/vclusters/new/", {"team": "alpha", "name": "x" * (1024 * 1024)})
    assert r.status_code == 400
    assert counts() == before


def test_it_names_the_exhausted_resource(teammate, world):
    Team.objects.filter(pk=world.alpha.pk).update(cpu_millicores=2000)
    make_vcluster(world.alpha, "big", cpu_millicores=1500)
    before = counts()
    r = teammate.post("/api/v1/vclusters/", {"team": "alpha", "name": "x", "cpu": "1"}, format="json")
    assert_rejected(r, "cpu", counts_before=before)
    assert r.json()["code"] == "quota_exceeded"
    assert "500m left of 2" in r.json()["errors"]["cpu"][0]


QUOTA = {"max_vclusters": 5, "cpu": "8", "memory": "16Gi", "storage": "100Gi", "pods": 100}


@pytest.mark.parametrize("field, value", [
    ("max_vclusters", -1), ("max_vclusters", "many"), ("max_vclusters", 10**9), ("cpu", "-8"), ("cpu", "1e12"),
    ("memory", "-1Gi"), ("memory", "1e40"), ("storage", "x"), ("pods", "-1"), ("pods", 2.5),
])
def test_it_rejects_bad_quotas(api, world, field, value):
    staff = api("staff")
    quota_before = Team.objects.get(pk=world.alpha.pk).quota()
    before = counts()
    r = staff.put("/api/v1/teams/alpha/quota/", {**QUOTA, field: value}, format="json")
    assert_rejected(r, field, counts_before=before)
    assert Team.objects.get(pk=world.alpha.pk).quota() == quota_before


def test_it_requires_every_field_on_put_but_not_on_patch(api, world):
    staff = api("staff")
    r = staff.put("/api/v1/teams/alpha/quota/", {"cpu": "4"}, format="json")
    assert r.status_code == 400
    assert {"max_vclusters", "memory", "storage", "pods"} <= set(r.json()["errors"])
    r = staff.patch("/api/v1/teams/alpha/quota/", {"cpu": "4"}, format="json")
    assert r.status_code == 200
    assert Team.objects.get(pk=world.alpha.pk).cpu_millicores == 4000


@pytest.mark.parametrize("body, field", [
    ({"username": "nobody", "role": "member"}, "username"),
    ({"username": "teammate", "role": "member"}, "username"),
    ({"username": "outsider", "role": "overlord"}, "role"),
])
def test_it_rejects_bad_members(api, world, body, field):
    owner = api("owner")
    before = (Membership.objects.count(), AuditEvent.objects.count())
    r = owner.post("/api/v1/teams/alpha/members/", body, format="json")
    assert r.status_code == 400
    assert field in r.json()["errors"]
    assert (Membership.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("body, field", [({"name": ""}, "name"), ({"name": "Alpha"}, "name"), ({"name": "New", "slug": "Bad Slug"}, "slug"), ({"name": "New", "slug": "beta"}, "slug")])
def test_it_rejects_bad_teams(api, body, field):
    staff = api("staff")
    before = (Team.objects.count(), AuditEvent.objects.count())
    r = staff.post("/api/v1/teams/", body, format="json")
    assert r.status_code == 400
    assert field in r.json()["errors"]
    assert (Team.objects.count(), AuditEvent.objects.count()) == before


def test_it_shows_form_errors_on_the_create_page(world):
    client = Client()
    client.force_login(world.teammate)
    before = counts()
    r = client.post("/vclusters/new/", {"team": "alpha", "name": "Bad_Name", "kubernetes_version": "v1.37.2",
                                        "cpu": "-1", "memory": "2Gi", "storage": "10Gi", "pods": "10"})
    assert r.status_code == 400
    assert b"DNS-1123" in r.content and b"must not be negative" in r.content
    assert counts() == before
