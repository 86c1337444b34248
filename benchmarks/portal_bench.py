#!/usr/bin/env python
"""Portal benchmark: the vcluster list API and the dashboard with 50 teams and
1,000 vclusters. Reports median and p95 latency and queries per request, and checks
that the query count does not grow with the row count.

    DATABASE_URL=postgres://… DJANGO_SECRET_KEY=… FIELD_ENCRYPTION_KEYS=… \\
        .venv/bin/python benchmarks/portal_bench.py [--requests 200]

Runs in-process through Django's test client (no network, no server), in its own
throwaway database (vcportal_bench) created and dropped by this script.
Targets: list API p95 ≤ 50 ms, dashboard p95 ≤ 100 ms, constant queries.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

TEAMS = 50
VCLUSTERS = 1_000
TARGETS = {"list API": 50.0, "dashboard": 100.0}


def populate(teams: int, vclusters: int) -> None:
    from accounts.models import Membership, Role, Team
    from vclusters.models import Phase, VCluster

    User = get_user_model()
    existing = Team.objects.count()
    new_teams = Team.objects.bulk_create(
        Team(name=f"Team {i:02}", slug=f"team-{i:02}", max_vclusters=100) for i in range(existing, teams)
    )
    all_teams = list(Team.objects.order_by("id"))
    users = {name: User.objects.get_or_create(username=name, defaults={"is_staff": name == "platform"})[0]
             for name in ["platform", "member"]}
    if new_teams:
        Membership.objects.get_or_create(team=all_teams[0], user=users["member"], defaults={"role": Role.MEMBER})
        for team in all_teams[:3]:
            Membership.objects.get_or_create(team=team, user=users["platform"], defaults={"role": Role.ADMIN})
    phases = list(Phase)
    start = VCluster.objects.count()
    VCluster.objects.bulk_create(
        VCluster(team=all_teams[i % len(all_teams)], name=f"vc-{i:04}", kubernetes_version="v1.37.2",
                 cpu_millicores=500, memory_bytes=2**30, storage_bytes=10 * 2**30, pods=20,
                 phase=phases[i % len(phases)], created_by=users["member"])
        for i in range(start, vclusters)
    )


def measure(client: Client, url: str, requests: int, **headers) -> dict:
    client.get(url, **headers)  # warm caches (templates, URL resolvers)
    timings, queries = [], set()
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url, **headers)
            timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries.add(len(captured.captured_queries))
    timings.sort()
    return {
        "median": statistics.median(timings),
        "p95": timings[int(0.95 * (len(timings) - 1))],
        "queries": sorted(queries),
    }


def clients():
    from accounts.audit import Actor
    from accounts.services import create_token

    result = {}
    for username in ["platform", "member"]:
        user = get_user_model().objects.get(username=username)
        api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(Actor(user), name='bench')[1]}")
        page = Client()
        page.force_login(user)
        result[username] = (api, page)
    return result


def run(requests: int) -> int:
    rows, failures = [], []
    query_counts = {}
    for teams, vclusters in [(5, 100), (TEAMS, VCLUSTERS)]:
        populate(teams, vclusters)
        for persona, (api, page) in clients().items():
            for name, client, url in [("list API", api, "/api/v1/vclusters/"), ("dashboard", page, "/")]:
                result = measure(client, url, requests)
                query_counts.setdefault((persona, name), []).append(result["queries"])
                if vclusters == VCLUSTERS:
                    rows.append((name, persona, result))
                    if result["p95"] > TARGETS[name]:
                        failures.append(f"{name} ({persona}) p95 {result['p95']:.1f} ms > {TARGETS[name]:.0f} ms")

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{TEAMS} teams, {VCLUSTERS} vclusters, {requests} requests each, in-process, {connection.vendor}, "
          f"{os.cpu_count()} CPUs, load average {load}")
    print(f"{'endpoint':<10} {'as':<16} {'median ms':>10} {'p95 ms':>8} {'queries':>8}  target p95")
    for name, persona, r in rows:
        as_who = "platform admin" if persona == "platform" else "team member"
        print(f"{name:<10} {as_who:<16} {r['median']:>10.1f} {r['p95']:>8.1f} {','.join(map(str, r['queries'])):>8}"
              f"  ≤ {TARGETS[name]:.0f} ms")
    for (persona, name), counts in query_counts.items():
        if len({tuple(c) for c in counts}) != 1 or len(counts[0]) != 1:
            failures.append(f"{name} ({persona}) queries vary with the row count: {counts}")
    if not any("queries" in f for f in failures):
        print("queries per request are the same with 100 and 1,000 vclusters")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and persona")
    args = parser.parse_args()
    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Static URLs without the collectstatic manifest, so the script needs no build step.
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    connection.settings_dict["TEST"]["NAME"] = "vcportal_bench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        return run(args.requests)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
