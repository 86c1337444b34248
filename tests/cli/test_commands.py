"""vcp against a live portal, for everything that needs no cluster: login, the
lookups, output formats, and every documented exit code with the API's message."""

import json
import stat

import pytest
import yaml

from accounts.models import Team
from tests.portal.conftest import make_vcluster, token_for
from vclusters.models import VCluster

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_logs_in_into_a_private_config_and_says_who_you_are(vcp, live_server, world):
    token = token_for(world.teammate)
    result = vcp.login(live_server.url, token)
    assert f"Logged in to {live_server.url} as teammate" in result.stdout
    assert stat.S_IMODE(vcp.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(vcp.config.parent.stat().st_mode) == 0o700
    assert yaml.safe_load(vcp.config.read_text()) == {"url": live_server.url, "token": token}
    whoami = vcp("whoami").stdout
    assert whoami.splitlines() == [f"teammate on {live_server.url}", "  alpha: member"]
    assert token not in result.stdout + result.stderr + whoami
    assert vcp("logout").stdout == "Logged out.\n" and not vcp.config.exists()
    assert "Not logged in" in vcp("whoami", code=3).stderr


def test_it_refuses_a_wrong_token_and_keeps_nothing(vcp, live_server, world):
    result = vcp("login", live_server.url, "--token-stdin", input="vcp_wrong\n", code=3)
    assert result.stderr == "error: Invalid or revoked token.\n"
    assert not vcp.config.exists()


def test_it_refuses_bad_usage_with_code_2(vcp, live_server, world):
    assert "not a portal URL" in vcp("login", "portal.example", "--token-stdin", input="t\n", code=2).stderr
    assert "not a portal URL" in vcp("login", "http://", "--token-stdin", input="t\n", code=2).stderr
    for token in ["two words", "t\u00f6ken"]:  # either would break the Authorization header
        refused = vcp("login", live_server.url, "--token-stdin", input=f"{token}\n", code=2)
        assert "not an API token" in refused.stderr and "Traceback" not in refused.stderr
    assert not vcp.config.exists()
    assert "No such option" in vcp("list", "vclusters", "--colour", code=2).stderr
    assert "Usage:" in vcp("create", "vcluster", "--help").stdout


def test_it_prints_the_apis_message_for_bad_input_with_code_2(logged_in, world):
    vcp = logged_in("teammate")
    result = vcp("create", "vcluster", "Bad_Name", "--cpu", "lots", code=2)
    first, *details = result.stderr.splitlines()
    assert first == "error: Invalid input: cpu, name."
    assert sorted(line.split(":")[0] for line in details) == ["  cpu", "  name"]
    assert '  cpu: "lots" is not a Kubernetes quantity' in result.stderr
    assert not VCluster.objects.exists()


def test_it_prints_the_quota_refusal_with_code_5(logged_in, world):
    Team.objects.filter(slug="alpha").update(max_vclusters=0)
    result = logged_in("teammate")("create", "vcluster", "web", code=5)
    assert result.stderr == "error: Quota max_vclusters exhausted: Alpha has 0 of 0 vclusters.\n"
    assert not VCluster.objects.exists()


def test_it_says_not_found_with_code_4_and_forbidden_with_code_3(logged_in, world):
    make_vcluster(world.beta, "theirs")
    vcp = logged_in("teammate")
    assert vcp("get", "vcluster", "theirs", code=4).stderr == "error: No vcluster 'theirs' among yours.\n"
    assert vcp("quota", "get", "beta", code=4).stderr == "error: No Team matches the given query.\n"
    assert vcp("quota", "set", "alpha", "--cpu", "64", code=3).stderr == "error: Only platform admins may do this.\n"


def test_it_lists_in_each_format(logged_in, world):
    make_vcluster(world.alpha, "web")
    make_vcluster(world.alpha, "ci", phase="Ready")
    make_vcluster(world.alpha, "old", phase="Deleted")
    vcp = logged_in("teammate")
    table = vcp("list", "vclusters").stdout.splitlines()
    assert table[0].split() == ["NAME", "TEAM", "PHASE", "VERSION", "CPU", "MEMORY", "STORAGE", "PODS", "CREATED"]
    assert sorted(line.split()[:3] for line in table[1:]) == [["ci", "alpha", "Ready"], ["web", "alpha", "Pending"]]
    listed = json.loads(vcp("list", "vclusters", "-o", "json").stdout)
    assert sorted(v["name"] for v in listed) == ["ci", "web"] and listed[0]["cpu"] == "1"
    assert yaml.safe_load(vcp("list", "vclusters", "--team", "alpha", "-o", "yaml").stdout) == listed
    assert vcp("get", "vcluster", "ci", "-o", "json").stdout.count('"steps"') == 1
    assert "phase      Ready" in vcp("get", "vcluster", "ci").stdout


def test_it_needs_team_only_when_the_name_is_ambiguous(logged_in, world):
    make_vcluster(world.alpha, "web")
    make_vcluster(world.beta, "web")
    make_vcluster(world.beta, "api")
    staff = logged_in("staff")  # a platform admin sees both teams
    assert staff("get", "vcluster", "web", code=2).stderr == (
        "error: Several teams have a vcluster 'web' (alpha, beta): pass --team.\n")
    assert json.loads(staff("get", "vcluster", "web", "--team", "beta", "-o", "json").stdout)["team"] == "beta"
    assert json.loads(staff("get", "vcluster", "api", "-o", "json").stdout)["team"] == "beta"
    assert staff("create", "vcluster", "new", code=2).stderr == (
        "error: You may create vclusters in several teams (alpha, beta): pass --team.\n")


def test_admins_see_teams_and_set_quotas(logged_in, world):
    staff = logged_in("staff")
    assert [line.split()[0] for line in staff("teams").stdout.splitlines()] == ["TEAM", "alpha", "beta"]
    result = staff("quota", "set", "alpha", "--max-vclusters", "7", "--memory", "32Gi")
    assert result.stdout.splitlines()[1].split() == ["max_vclusters", "7", "0", "7"]
    assert Team.objects.get(slug="alpha").max_vclusters == 7
    assert json.loads(staff("quota", "get", "alpha", "-o", "json").stdout)["memory"] == "32Gi"
    assert "at least one" in staff("quota", "set", "alpha", code=2).stderr
