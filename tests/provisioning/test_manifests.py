"""The host objects of a vcluster, as pure manifests."""

import re

import pytest
from kubernetes.utils import parse_quantity

from controlplane import addons
from provisioning import manifests

LABELS = manifests.labels(7, "alpha", "portal-a")
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def test_namespace_name_is_the_portal_token_then_vcluster_id_team_and_vcluster():
    assert manifests.host_namespace_name("k3x9a", 7, "alpha", "dev") == "vc-k3x9a-7-alpha-dev"


def test_names_that_collided_as_team_and_vcluster_no_longer_meet():
    """`data` + `science-prod` and `data-science` + `prod` both gave vc-data-science-prod."""
    assert manifests.host_namespace_name("k3x9a", 1, "data", "science-prod") != manifests.host_namespace_name(
        "k3x9a", 2, "data-science", "prod"
    )
    # Nor can any team/vcluster name produce another id's prefix: the id ends at the next '-'.
    assert manifests.host_namespace_name("k3x9a", 1, "2-x", "y") != manifests.host_namespace_name("k3x9a", 12, "x", "y")


def test_two_portals_vcluster_of_one_id_team_and_name_get_two_namespaces():
    assert manifests.host_namespace_name("k3x9a", 1, "demo", "web") != manifests.host_namespace_name(
        "p0rt2", 1, "demo", "web")


def test_a_token_starts_with_a_letter_so_no_older_name_vc_id_can_equal_a_new_one():
    tokens = {manifests.new_installation_token() for _ in range(2000)}
    assert all(re.fullmatch(r"[a-z][a-z0-9]{4}", token) for token in tokens)
    assert len(tokens) > 1990  # random, not a counter


def test_long_namespace_names_are_cut_and_stay_distinct_by_id():
    team = "t" * 50
    one = manifests.host_namespace_name("k3x9a", 10**12, team, "a" * 40)
    two = manifests.host_namespace_name("k3x9a", 10**12 + 1, team, "a" * 40)
    assert len(one) <= 63 and len(two) <= 63
    assert one != two
    assert re.fullmatch(DNS_LABEL, one) and re.fullmatch(
        DNS_LABEL, manifests.host_namespace_name("k3x9a", 5, "a" * 53, "b"))


@pytest.mark.parametrize(("existing", "conflict"), [
    (LABELS, None),
    ({**LABELS, "something": "else"}, None),
    ({k: v for k, v in LABELS.items() if k != manifests.INSTALLATION_LABEL}, None),  # written before the mark
    ({**LABELS, manifests.VCLUSTER_LABEL: "8"}, "has vcportal.io/vcluster-id=8, not 7"),
    ({**LABELS, manifests.INSTALLATION_LABEL: "portal-b"}, "has vcportal.io/installation=portal-b, not portal-a"),
    ({}, "has no app.kubernetes.io/managed-by label, so it is not vcportal's"),
    ({"kubernetes.io/metadata.name": "theirs"}, "has no app.kubernetes.io/managed-by label, so it is not vcportal's"),
])
def test_an_object_is_ours_only_with_our_marks(existing, conflict):
    assert manifests.ownership_conflict(existing, LABELS) == conflict


def test_the_node_reader_role_shared_by_every_vcluster_is_anyones_to_apply():
    assert manifests.ownership_conflict({}, manifests.MANAGED_BY) is None


def test_namespace_enforces_the_pod_security_level_and_carries_ownership():
    ns = manifests.namespace("vc-7-alpha-dev", LABELS, "restricted")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["vcportal.io/vcluster-id"] == "7"
    assert labels["app.kubernetes.io/managed-by"] == "vcportal"
    assert labels["vcportal.io/installation"] == "portal-a"


def test_quota_is_the_requested_resources():
    quota = manifests.resource_quota(
        "ns", LABELS, cpu_millicores=1500, memory_bytes=2**31, storage_bytes=10 * 2**30, pods=20
    )
    hard = quota["spec"]["hard"]
    assert hard["requests.cpu"] == "1500m" and "limits.cpu" not in hard  # CPU is shared by requests
    assert hard["requests.memory"] == str(2**31)
    assert hard["requests.storage"] == str(10 * 2**30)
    assert hard["pods"] == "20"
    assert hard["services.nodeports"] == hard["services.loadbalancers"] == "0"
    assert hard["requests.ephemeral-storage"] == hard["limits.ephemeral-storage"] == str(20 * 2**30)


def test_containers_get_no_default_cpu_limit_and_the_weight_of_no_cpu_request():
    [defaults] = manifests.limit_range("ns", LABELS)["spec"]["limits"]
    assert "cpu" not in defaults["default"] and defaults["default"]["memory"] == "512Mi"
    assert defaults["defaultRequest"]["cpu"] == "1m"  # cpu.shares 2, the kernel's weight for a container without a request


def test_quota_counts_objects_from_the_pod_count():
    counts = manifests.object_counts(20)
    assert counts == {
        "count/services": "20", "count/endpoints": "20", "count/persistentvolumeclaims": "20",
        "count/configmaps": "70", "count/secrets": "70",
    }
    assert manifests.object_counts(1)["count/services"] == "10"


def test_containers_without_an_ephemeral_storage_request_get_defaults():
    limits = manifests.limit_range("ns", LABELS)["spec"]["limits"][0]
    assert limits["defaultRequest"]["ephemeral-storage"] == "64Mi"
    assert limits["default"]["ephemeral-storage"] == "512Mi"


def test_network_policies_admit_only_the_namespace_the_hosts_ingress_controllers_and_public_addresses():
    ingress, controllers, egress = manifests.network_policies("ns", LABELS)
    assert ingress["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert controllers["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"vcportal.io/ingress-controller": "true"}}}]}]
    same_namespace, public = egress["spec"]["egress"]
    assert same_namespace == {"to": [{"podSelector": {}}]}  # the vcluster's own CoreDNS among them
    assert "169.254.0.0/16" in public["to"][0]["ipBlock"]["except"]


def test_a_vcluster_may_reach_its_own_api_server_and_nothing_else_of_the_sort():
    policy = manifests.api_access_policy("ns", LABELS, "10.98.150.7", 443)
    assert policy["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.98.150.7/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    ]


def test_syncer_may_write_only_in_its_namespace():
    objects = manifests.syncer_identity("vc-7-alpha-dev", LABELS)
    kinds = {o["kind"]: o for o in objects}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert kinds["Role"]["metadata"]["namespace"] == "vc-7-alpha-dev"
    cluster_verbs = {v for rule in kinds["ClusterRole"]["rules"] for v in rule["verbs"]}
    assert cluster_verbs <= {"get", "list", "watch"}
    assert kinds["ClusterRoleBinding"]["metadata"]["labels"]["vcportal.io/vcluster-id"] == "7"
    assert "*" not in str(kinds["Role"]["rules"])


def test_the_quota_makes_room_for_exactly_the_cluster_dns_limits():
    deployment = next(m for m in addons.coredns_manifests("image", "cluster.local") if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    limits = [c["resources"]["limits"] for c in pod["containers"]]
    share = manifests.CLUSTER_DNS_SHARE
    assert share["pods"] == deployment["spec"]["replicas"]
    assert share["cpu_millicores"] == sum(parse_quantity(x["cpu"]) for x in limits) * 1000
    assert share["memory_bytes"] == sum(parse_quantity(x["memory"]) for x in limits)
