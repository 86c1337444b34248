"""The host objects of a vcluster, as pure manifests."""

import re

from provisioning import manifests

LABELS = manifests.labels(7, "alpha")


def test_namespace_name_is_team_and_vcluster():
    assert manifests.host_namespace_name("alpha", "dev") == "vc-alpha-dev"


def test_long_namespace_names_are_cut_with_a_stable_hash_and_stay_distinct():
    team = "t" * 50
    one = manifests.host_namespace_name(team, "a" * 40)
    two = manifests.host_namespace_name(team, "a" * 39 + "b")
    assert len(one) <= 63 and len(two) <= 63
    assert one != two
    assert one == manifests.host_namespace_name(team, "a" * 40)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", one)


def test_namespace_enforces_the_pod_security_level_and_carries_ownership():
    ns = manifests.namespace("vc-alpha-dev", LABELS, "restricted")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["vcportal.io/vcluster-id"] == "7"
    assert labels["app.kubernetes.io/managed-by"] == "vcportal"


def test_quota_is_the_requested_resources():
    quota = manifests.resource_quota(
        "ns", LABELS, cpu_millicores=1500, memory_bytes=2**31, storage_bytes=10 * 2**30, pods=20
    )
    hard = quota["spec"]["hard"]
    assert hard["requests.cpu"] == hard["limits.cpu"] == "1500m"
    assert hard["requests.memory"] == str(2**31)
    assert hard["requests.storage"] == str(10 * 2**30)
    assert hard["pods"] == "20"
    assert hard["services.nodeports"] == "0"


def test_network_policies_admit_only_the_namespace_and_dns():
    ingress, egress = manifests.network_policies("ns", LABELS)
    assert ingress["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]
    rules = egress["spec"]["egress"]
    assert {"protocol": "UDP", "port": 53} in rules[1]["ports"]
    assert "169.254.0.0/16" in rules[2]["to"][0]["ipBlock"]["except"]


def test_syncer_may_write_only_in_its_namespace():
    objects = manifests.syncer_identity("vc-alpha-dev", LABELS)
    kinds = {o["kind"]: o for o in objects}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert kinds["Role"]["metadata"]["namespace"] == "vc-alpha-dev"
    cluster_verbs = {v for rule in kinds["ClusterRole"]["rules"] for v in rule["verbs"]}
    assert cluster_verbs <= {"get", "list", "watch"}
    assert kinds["ClusterRoleBinding"]["metadata"]["labels"]["vcportal.io/vcluster-id"] == "7"
    assert "*" not in str(kinds["Role"]["rules"])
