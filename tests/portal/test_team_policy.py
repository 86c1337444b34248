"""A team's Pod Security level (baseline by default, or restricted): read by whoever
sees the team, set by platform admins in the API (teams/{slug}/policy/) and on the
team page, audited against the team."""

import pytest
from django.test import Client

from accounts.models import AuditEvent
from provisioning.models import TeamPolicy

pytestmark = pytest.mark.django_db


def test_it_defaults_to_baseline_and_platform_admins_change_it(api, world):
    assert api("viewer").get("/api/v1/teams/alpha/policy/").json() == {"pod_security": "baseline"}
    r = api("staff").put("/api/v1/teams/alpha/policy/", {"pod_security": "restricted"}, format="json")
    assert (r.status_code, r.json()) == (200, {"pod_security": "restricted"})
    assert TeamPolicy.objects.get(team=world.alpha).pod_security == "restricted"
    assert api("teammate").get("/api/v1/teams/alpha/policy/").json() == {"pod_security": "restricted"}
    event = AuditEvent.objects.get(action="team.policy")
    assert (event.team, event.actor, event.data) == (
        world.alpha, world.staff, {"pod_security_before": "baseline", "pod_security": "restricted"})
    # The team's admins see it in their audit log.
    assert "team.policy" in [e["action"] for e in api("owner").get("/api/v1/audit-events/").json()["results"]]


@pytest.mark.parametrize("body", [{"pod_security": "privileged"}, {"pod_security": ""}, {}, {"pod_security": ["restricted"]}])
def test_it_refuses_other_levels_and_writes_nothing(api, world, body):
    staff = api("staff")
    before = AuditEvent.objects.count()
    r = staff.put("/api/v1/teams/alpha/policy/", body, format="json")
    assert r.status_code == 400
    assert "pod_security" in r.json()["errors"]
    assert AuditEvent.objects.count() == before
    assert not TeamPolicy.objects.exists()


def test_the_team_page_shows_the_level_and_lets_platform_admins_change_it(world):
    staff, owner = Client(), Client()
    staff.force_login(world.staff)
    owner.force_login(world.owner)
    page = owner.get("/teams/alpha/").content.decode()
    assert 'data-pod-security="baseline"' in page and 'name="pod_security"' not in page
    assert 'name="pod_security"' in staff.get("/teams/alpha/").content.decode()
    r = staff.post("/teams/alpha/policy/", {"pod_security": "restricted"}, follow=True)
    assert "Pod security of Alpha is now restricted." in r.content.decode()
    assert 'data-pod-security="restricted"' in owner.get("/teams/alpha/").content.decode()
    r = staff.post("/teams/alpha/policy/", {"pod_security": "privileged"}, follow=True)
    assert "Choose baseline or restricted." in r.content.decode()
    assert TeamPolicy.objects.get(team=world.alpha).pod_security == "restricted"
