"""Every API endpoint and page × every persona: anonymous, outsider (another team's
admin), viewer, teammate (member), owner (team admin), staff (platform admin).

Other teams' objects answer 404; read-only roles get 403 on writes. A denied write
leaves no trace: the audit log (written by every service function) is unchanged."""

import pytest
from django.test import Client

from accounts.audit import Actor
from accounts.models import ApiToken, AuditEvent, Membership, Team
from gateway.models import Purpose
from gateway.services import issue_token
from tests.portal.conftest import PERSONAS, expect, make_host, make_user, make_vcluster, token_for
from vclusters.models import Phase

pytestmark = pytest.mark.django_db

A, O, V, M, T, S = PERSONAS  # anonymous, outsider, viewer, teammate (member), owner (team admin), staff
QUOTA = {"max_vclusters": 10, "cpu": "20", "memory": "40Gi", "storage": "1Ti", "pods": 1000}


@pytest.fixture
def objects(world):
    make_user("newbie")
    web = make_vcluster(world.alpha, "web")
    ready = make_vcluster(world.alpha, "ready", phase=Phase.READY, kubeconfig="apiVersion: v1\nkind: Config\n")
    failed = make_vcluster(world.alpha, "failed", phase=Phase.FAILED, message="It broke.")
    Team.objects.filter(pk=world.alpha.pk).update(max_vclusters=10)  # room for one more create
    make_host("east", capacity_notes="the old one")
    owner_token = ApiToken.objects.get(pk=_token_id(world.owner))
    return {
        "web": web.pk,
        "ready": ready.pk,
        "failed": failed.pk,
        "membership": Membership.objects.get(team=world.alpha, user=world.teammate).pk,
        "owner_token": owner_token.pk,
        "gateway_token": issue_token(Actor(world.teammate), ready, Purpose.KUBECONFIG)[0].pk,
    }


def _token_id(user):
    token_for(user, name="owned")
    return ApiToken.objects.filter(user=user, name="owned").latest("id").pk


API = [
    ("GET", "/api/v1/me/", None, expect(401, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/teams/", None, expect(401, 200, 200, 200, 200, 200)),
    ("POST", "/api/v1/teams/", {"name": "Delta"}, expect(401, 403, 403, 403, 403, 201)),
    ("GET", "/api/v1/teams/alpha/", None, expect(401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/teams/alpha/quota/", None, expect(401, 404, 200, 200, 200, 200)),
    ("PUT", "/api/v1/teams/alpha/quota/", QUOTA, expect(401, 404, 403, 403, 403, 200)),
    ("PATCH", "/api/v1/teams/alpha/quota/", {"cpu": "12"}, expect(401, 404, 403, 403, 403, 200)),
    ("GET", "/api/v1/teams/alpha/members/", None, expect(401, 404, 200, 200, 200, 200)),
    ("POST", "/api/v1/teams/alpha/members/", {"username": "newbie", "role": "member"}, expect(401, 404, 403, 403, 201, 201)),
    ("GET", "/api/v1/teams/alpha/members/teammate/", None, expect(401, 404, 200, 200, 200, 200)),
    ("PATCH", "/api/v1/teams/alpha/members/teammate/", {"role": "viewer"}, expect(401, 404, 403, 403, 200, 200)),
    ("DELETE", "/api/v1/teams/alpha/members/teammate/", None, expect(401, 404, 403, 403, 204, 204)),
    ("GET", "/api/v1/vclusters/", None, expect(401, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/vclusters/?team=alpha&phase=Pending", None, expect(401, 200, 200, 200, 200, 200)),
    # An outsider naming a team it cannot see gets the same answer as for a missing team.
    ("POST", "/api/v1/vclusters/", {"team": "alpha", "name": "new"}, expect(401, 400, 403, 201, 201, 201)),
    ("GET", "/api/v1/vclusters/{web}/", None, expect(401, 404, 200, 200, 200, 200)),
    ("DELETE", "/api/v1/vclusters/{web}/", None, expect(401, 404, 403, 202, 202, 202)),
    # Personal kubeconfigs through the gateway, for every role (viewers: read-only inside);
    # the break-glass admin kubeconfig for platform admins only.
    ("GET", "/api/v1/vclusters/{web}/kubeconfig/", None, expect(401, 404, 409, 409, 409, 409)),
    ("GET", "/api/v1/vclusters/{ready}/kubeconfig/", None, expect(401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/vclusters/{ready}/kubeconfig/?admin=true", None, expect(401, 404, 403, 403, 403, 200)),
    ("POST", "/api/v1/vclusters/{web}/credentials/", None, expect(401, 404, 409, 409, 409, 409)),
    ("POST", "/api/v1/vclusters/{ready}/credentials/", None, expect(401, 404, 201, 201, 201, 201)),
    ("GET", "/api/v1/vclusters/{ready}/access-log/", None, expect(401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/vclusters/{ready}/activity/", None, expect(401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/vclusters/{ready}/access-tokens/", None, expect(401, 404, 200, 200, 200, 200)),
    # The teammate's gateway token: its owner, team admins and platform admins may revoke it.
    ("DELETE", "/api/v1/vclusters/{ready}/access-tokens/{gateway_token}/", None, expect(401, 404, 403, 200, 200, 200)),
    ("POST", "/api/v1/vclusters/{failed}/retry/", None, expect(401, 404, 403, 202, 202, 202)),
    ("POST", "/api/v1/vclusters/{web}/retry/", None, expect(401, 404, 403, 400, 400, 400)),  # Pending: not Failed
    ("GET", "/api/v1/teams/alpha/policy/", None, expect(401, 404, 200, 200, 200, 200)),
    ("PUT", "/api/v1/teams/alpha/policy/", {"pod_security": "restricted"}, expect(401, 404, 403, 403, 403, 200)),
    ("PATCH", "/api/v1/teams/alpha/policy/", {"pod_security": "restricted"}, expect(401, 404, 403, 403, 403, 200)),
    # Host clusters are platform infrastructure: 403 for everyone else, as for creating teams.
    ("GET", "/api/v1/host-clusters/", None, expect(401, 403, 403, 403, 403, 200)),
    ("POST", "/api/v1/host-clusters/", {"name": "west", "kubeconfig": "not: [a kubeconfig"},
     expect(401, 403, 403, 403, 403, 400)),  # a registration that works needs a cluster: test_host_clusters.py
    ("GET", "/api/v1/host-clusters/east/", None, expect(401, 403, 403, 403, 403, 200)),
    ("GET", "/api/v1/host-clusters/nowhere/", None, expect(401, 403, 403, 403, 403, 404)),
    ("PATCH", "/api/v1/host-clusters/east/", {"enabled": False, "teams": ["alpha"]}, expect(401, 403, 403, 403, 403, 200)),
    ("DELETE", "/api/v1/host-clusters/east/", None, expect(401, 403, 403, 403, 403, 204)),
    ("GET", "/api/v1/tokens/", None, expect(401, 200, 200, 200, 200, 200)),
    ("POST", "/api/v1/tokens/", {"name": "laptop"}, expect(401, 201, 201, 201, 201, 201)),
    ("GET", "/api/v1/tokens/{owner_token}/", None, expect(401, 404, 404, 404, 200, 404)),
    ("DELETE", "/api/v1/tokens/{owner_token}/", None, expect(401, 404, 404, 404, 204, 404)),
    ("GET", "/api/v1/audit-events/", None, expect(401, 200, 403, 403, 200, 200)),
    ("GET", "/api/schema/", None, expect(200, 200, 200, 200, 200, 200)),
    ("GET", "/api/docs/", None, expect(200, 200, 200, 200, 200, 200)),
]


def _cases(table) -> list:
    return list(_iter_cases(table))


def _iter_cases(table):
    for method, path, body, expected in table:
        for persona, status in expected.items():
            yield pytest.param(method, path, body, persona, status, id=f"{method} {path} {persona}")


@pytest.mark.parametrize("method, path, body, persona, status", _cases(API))
def test_it_authorizes_the_api(api, objects, method, path, body, persona, status):
    client = api(persona)
    events_before = AuditEvent.objects.count()
    response = getattr(client, method.lower())(path.format(**objects), body, format="json")
    assert response.status_code == status, getattr(response, "data", response.content)
    if method != "GET" and status >= 400:
        assert AuditEvent.objects.count() == events_before
    if status >= 400 and response.get("Content-Type", "").startswith("application/json"):
        assert {"message", "errors"} <= set(response.json())


REMOVE = "/teams/alpha/members/{membership}/remove/"
PAGES = [
    ("GET", "/", None, expect(302, 200, 200, 200, 200, 200)),
    ("GET", "/?team=alpha&phase=Pending", None, expect(302, 200, 200, 200, 200, 200)),
    ("GET", "/vclusters/new/", None, expect(302, 200, 403, 200, 200, 200)),
    # The outsider's form offers only beta, so "alpha" is an invalid choice: 400, nothing created.
    ("POST", "/vclusters/new/", {"team": "alpha", "name": "new", "kubernetes_version": "v1.37.2", "cpu": "1",
                                 "memory": "1Gi", "storage": "1Gi", "pods": "10"}, expect(302, 400, 403, 302, 302, 302)),
    ("GET", "/vclusters/new/headroom/?team=alpha", None, expect(302, 200, 200, 200, 200, 200)),
    ("GET", "/vclusters/{web}/", None, expect(302, 404, 200, 200, 200, 200)),
    ("GET", "/vclusters/{web}/kubeconfig/", None, expect(302, 404, 409, 409, 409, 409)),
    ("GET", "/vclusters/{ready}/kubeconfig/", None, expect(302, 404, 200, 200, 200, 200)),
    ("GET", "/vclusters/{ready}/kubeconfig/?admin=true", None, expect(302, 404, 403, 403, 403, 200)),
    ("GET", "/vclusters/{web}/delete/", None, expect(302, 404, 403, 200, 200, 200)),
    ("POST", "/vclusters/{web}/delete/", {}, expect(302, 404, 403, 302, 302, 302)),
    ("POST", "/vclusters/{failed}/retry/", {}, expect(302, 404, 403, 302, 302, 302)),
    ("GET", "/teams/", None, expect(302, 200, 200, 200, 200, 200)),
    ("POST", "/teams/", {"name": "Delta"}, expect(302, 403, 403, 403, 403, 302)),
    ("GET", "/teams/alpha/", None, expect(302, 404, 200, 200, 200, 200)),
    ("GET", "/teams/alpha/quota/", None, expect(302, 404, 403, 403, 403, 200)),
    ("POST", "/teams/alpha/quota/", QUOTA, expect(302, 404, 403, 403, 403, 302)),
    ("POST", "/teams/alpha/members/", {"username": "newbie", "role": "member"}, expect(302, 404, 403, 403, 302, 302)),
    ("POST", "/teams/alpha/members/{membership}/role/", {"role": "viewer"}, expect(302, 404, 403, 403, 302, 302)),
    ("POST", REMOVE, {}, expect(302, 404, 403, 403, 302, 302)),
    ("POST", "/teams/alpha/policy/", {"pod_security": "restricted"}, expect(302, 404, 403, 403, 403, 302)),
    ("GET", "/host-clusters/", None, expect(302, 403, 403, 403, 403, 200)),
    ("POST", "/host-clusters/", {"name": "west", "kubeconfig": "not: [a kubeconfig"}, expect(302, 403, 403, 403, 403, 400)),
    ("GET", "/host-clusters/east/", None, expect(302, 403, 403, 403, 403, 200)),
    ("GET", "/host-clusters/nowhere/", None, expect(302, 403, 403, 403, 403, 404)),
    ("POST", "/host-clusters/east/", {"enabled": "on", "capacity_notes": "8 nodes", "teams": ["alpha"]},
     expect(302, 403, 403, 403, 403, 302)),
    ("POST", "/host-clusters/east/toggle/", {}, expect(302, 403, 403, 403, 403, 302)),
    ("POST", "/host-clusters/east/delete/", {}, expect(302, 403, 403, 403, 403, 302)),
    ("GET", "/tokens/", None, expect(302, 200, 200, 200, 200, 200)),
    ("POST", "/tokens/", {"name": "laptop"}, expect(302, 200, 200, 200, 200, 200)),
    ("POST", "/tokens/{owner_token}/revoke/", {}, expect(302, 404, 404, 404, 302, 404)),
    ("GET", "/audit/", None, expect(302, 200, 403, 403, 200, 200)),
    ("GET", "/accounts/login/", None, expect(200, 302, 302, 302, 302, 302)),
]


@pytest.mark.parametrize("method, path, body, persona, status", _cases(PAGES))
def test_it_authorizes_the_pages(world, objects, method, path, body, persona, status):
    client = Client(enforce_csrf_checks=False)
    if persona != "anonymous":
        client.force_login(world.users[persona])
    events_before = AuditEvent.objects.count()
    response = getattr(client, method.lower())(path.format(**objects), body or {})
    assert response.status_code == status
    if status == 302 and persona == "anonymous":
        assert response["Location"].startswith("/accounts/login/")
    if method == "POST" and status >= 400:
        assert AuditEvent.objects.count() == events_before


def test_it_shows_outsiders_nothing_of_other_teams(api, objects, world):
    outsider = api("outsider")
    assert [t["slug"] for t in outsider.get("/api/v1/teams/").json()["results"]] == ["beta"]
    assert outsider.get("/api/v1/vclusters/").json()["results"] == []
    assert outsider.get("/api/v1/vclusters/?team=alpha").json()["results"] == []
    assert all(e["team"] == "beta" for e in outsider.get("/api/v1/audit-events/").json()["results"])
    page = Client()
    page.force_login(world.outsider)
    assert b"web" not in page.get("/").content


def test_it_lists_every_team_for_platform_admins(api, objects):
    slugs = {t["slug"] for t in api("staff").get("/api/v1/teams/").json()["results"]}
    assert slugs == {"alpha", "beta"}


def test_it_requires_csrf_for_session_authenticated_api_writes(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.teammate)
    response = client.post("/api/v1/vclusters/", {"team": "alpha", "name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
    assert client.get("/api/v1/vclusters/").status_code == 200


def test_it_keeps_a_team_admin(api, world):
    r = api("owner").patch("/api/v1/teams/alpha/members/owner/", {"role": "member"}, format="json")
    assert r.status_code == 400
    assert "role" in r.json()["errors"]
    assert Membership.objects.get(team=world.alpha, user=world.owner).role == "admin"


# What a page offers follows the rule that guards it: a link or button shows exactly
# for the personas the matrix above lets through.
OFFERS = [
    ("/", 'href="/audit/"', expect(None, True, False, False, True, True)),
    ("/", 'href="/host-clusters/"', expect(None, False, False, False, False, True)),
    ("/teams/alpha/", 'href="/teams/alpha/quota/"', expect(None, None, False, False, False, True)),
    ("/teams/alpha/", 'action="/teams/alpha/policy/"', expect(None, None, False, False, False, True)),
    ("/teams/alpha/", 'action="/teams/alpha/members/"', expect(None, None, False, False, True, True)),
    ("/vclusters/{failed}/", 'action="/vclusters/{failed}/retry/"', expect(None, None, False, True, True, True)),
    ("/vclusters/{failed}/", 'href="/vclusters/{failed}/delete/"', expect(None, None, False, True, True, True)),
    ("/vclusters/{ready}/", 'href="/vclusters/{ready}/kubeconfig/"', expect(None, None, True, True, True, True)),
    ("/vclusters/{ready}/", 'href="/vclusters/{ready}/kubeconfig/?admin=true"', expect(None, None, False, False, False, True)),
    ("/vclusters/{ready}/", 'id="access-list"', expect(None, None, True, True, True, True)),
]


@pytest.mark.parametrize("path, marker, offered", OFFERS, ids=[f"{p} {m}" for p, m, _ in OFFERS])
def test_pages_offer_what_the_rules_allow(world, objects, path, marker, offered):
    shown = {}
    for persona, expected in offered.items():
        if expected is None:  # anonymous is sent to log in; the outsider gets 404
            continue
        client = Client()
        client.force_login(world.users[persona])
        response = client.get(path.format(**objects))
        assert response.status_code == 200
        shown[persona] = marker.format(**objects) in response.content.decode()
    assert shown == {p: e for p, e in offered.items() if e is not None}
