"""Pages and lists cost a fixed number of queries, whatever the number of rows."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Role
from tests.portal.conftest import make_team, make_vcluster

pytestmark = pytest.mark.django_db

URLS = ["/api/v1/vclusters/", "/", "/teams/", "/api/v1/teams/", "/api/v1/audit-events/", "/audit/"]


def queries(client, url) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def add_rows(world, user, staff, start: int, stop: int) -> None:
    for i in range(start, stop):
        team = make_team(f"t-{i}")
        Membership.objects.create(team=team, user=user, role=Role.ADMIN)
        make_vcluster(world.alpha, f"a-{i}")
        staff.post("/api/v1/vclusters/", {"team": f"t-{i}", "name": "x"}, format="json")  # audited rows too


@pytest.mark.parametrize("persona", ["owner", "staff"])
@pytest.mark.parametrize("url", URLS)
def test_it_does_not_query_per_row(api, world, persona, url):
    user = world.users[persona]
    if url.startswith("/api/"):
        client = api(persona)
    else:
        client = Client()
        client.force_login(user)
    staff = api("staff")
    add_rows(world, user, staff, 0, 2)
    client.get(url)  # the token's last-used stamp is written on first use only
    few = queries(client, url)
    add_rows(world, user, staff, 2, 15)
    many = queries(client, url)
    assert len(many) == len(few), "\n".join(many)
