"""20 parallel creates against a limit of 3 yield exactly 3 vclusters: the quota
check runs under a row lock on the team (SELECT … FOR UPDATE) on PostgreSQL."""

import pytest

from accounts.models import Membership, Role, Team
from tests.portal.conftest import make_user, post_in_parallel, require_postgresql, token_for
from vclusters.models import VCluster

PARALLEL = 20
LIMIT = 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_overshoots_the_quota_under_parallel_creates(settings):
    require_postgresql()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    team = Team.objects.create(name="Race", slug="race", max_vclusters=LIMIT, cpu_millicores=100_000)
    user = make_user("racer")
    Membership.objects.create(team=team, user=user, role=Role.MEMBER)
    responses = post_in_parallel(
        token_for(user), [("/api/v1/vclusters/", {"team": "race", "name": f"vc-{i}", "cpu": "1"}) for i in range(PARALLEL)]
    )
    results = [(r.status_code, r.json()) for r in responses]

    statuses = [status for status, _ in results]
    assert statuses.count(201) == LIMIT, results
    assert statuses.count(400) == PARALLEL - LIMIT
    for status, body in results:
        if status == 400:
            assert body["code"] == "quota_exceeded"
            assert "max_vclusters" in body["message"]
    assert VCluster.objects.filter(team=team).count() == LIMIT
