"""NetworkPolicies (syncer/kinds/networkpolicies.py): a tenant's policy becomes a host
policy that can only narrow the vcluster's own isolation.

The translation is shown rule by rule; on kwok, the host copies and the marks on isolated
pods; on the real node, with traffic: kube-router enforces the copies."""

from __future__ import annotations

import pytest
from kubernetes import client

from controlplane.images import reference
from localkube.testing import kubectl
from provisioning import manifests
from provisioning.hostkube import HostKube
from syncer import names
from syncer.kinds.networkpolicies import ISOLATED, MATCHES_NOTHING, PUBLIC, host_network_policy, isolation_labels
from syncer.translate import Target, selector_matches
from tests.kube.helpers import eventually, new_namespace, run_pod
from tests.provisioning.test_network_isolation import HTTP_PORT, HTTPD, SMALL, connect

from .conftest import TEST_LABELS

TARGET = Target("vc", "host-ns")
NAMESPACES = {"shop": {"kubernetes.io/metadata.name": "shop", "team": "web"},
              "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
              "db": {"kubernetes.io/metadata.name": "db", "team": "data"}}


def policy(spec: dict, namespace: str = "shop", name: str = "p") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": "u"}, "spec": spec}


def host_spec(spec: dict) -> tuple[dict, list[str]]:
    copy, dropped = host_network_policy(policy(spec), TARGET, NAMESPACES)
    return copy["spec"], dropped


def ours(namespace: str, **labels) -> dict:
    return {**labels, names.LABEL_MANAGED_BY: "vc", names.LABEL_NAMESPACE: namespace}


def test_selectors_reach_only_this_vclusters_pods_of_the_namespaces_they_name():
    spec, dropped = host_spec({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"podSelector": {"matchLabels": {"app": "shop"}}},
        {"namespaceSelector": {"matchLabels": {"team": "data"}}, "podSelector": {"matchLabels": {"app": "etl"}}},
        {"namespaceSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nowhere"}}},
    ]}]})
    assert dropped == []
    assert selector_matches(spec["podSelector"], ours("shop", app="web"))
    assert not selector_matches(spec["podSelector"], ours("db", app="web")), "another virtual namespace"
    assert not selector_matches(spec["podSelector"], {"app": "web"}), "a pod of another tenant or of the host"
    same, etl, everywhere, nowhere = (peer["podSelector"] for peer in spec["ingress"][0]["from"])
    assert selector_matches(same, ours("shop", app="shop")) and not selector_matches(same, ours("db", app="shop"))
    assert selector_matches(etl, ours("db", app="etl")) and not selector_matches(etl, ours("shop", app="etl"))
    assert not selector_matches(etl, {"app": "etl", names.LABEL_NAMESPACE: "db"}), "the host's labels alone"
    assert all(selector_matches(everywhere, ours(ns)) for ns in NAMESPACES)
    assert not selector_matches(everywhere, {names.LABEL_MANAGED_BY: "other-vc"})
    assert nowhere == MATCHES_NOTHING and not selector_matches(nowhere, ours("shop"))
    assert set(spec) == {"podSelector", "policyTypes", "ingress"} and spec["policyTypes"] == ["Ingress"]


def test_an_empty_peer_list_means_the_vcluster_and_for_egress_the_public_internet_too():
    spec, _ = host_spec({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                         "ingress": [{"ports": [{"port": 80}]}], "egress": [{}]})
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 80}],
                                "from": [{"podSelector": {"matchExpressions": [
                                    {"key": names.LABEL_MANAGED_BY, "operator": "In", "values": ["vc"]}]}}]}]
    assert spec["egress"][0]["to"][1] == PUBLIC


def test_ip_blocks_keep_only_their_public_part_and_a_rule_left_without_peers_is_dropped():
    spec, dropped = host_spec({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                               "ingress": [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}],
                               "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}]},
                                          {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}},
                                                  {"podSelector": {"matchLabels": {"app": "db"}}}]},
                                          {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["1.2.3.0/24"]}}]},
                                          {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}]})
    assert spec["ingress"] == [], "outside sources are not admitted at all: the rule goes, not the isolation"
    metadata_rule, internet = spec["egress"]
    assert len(metadata_rule["to"]) == 1, "the pods stay, the metadata address goes"
    assert selector_matches(metadata_rule["to"][0]["podSelector"], ours("shop", app="db"))
    assert internet["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"1.2.3.0/24", "10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(internet["to"][0]["ipBlock"]["except"])
    assert dropped == ["ipBlock 203.0.113.0/24 (ingress)", "ipBlock 10.96.0.1/32 (egress)",
                       "ipBlock 169.254.169.254/32 (egress)", "ipBlock 2001:db8::/32 (egress)"]


def test_a_pod_is_isolated_in_the_directions_its_namespaces_policies_select_it_for():
    web = {"metadata": {"namespace": "shop", "labels": {"app": "web"}}}
    deny_in = policy({"podSelector": {"matchLabels": {"app": "web"}}})
    deny_out = policy({"podSelector": {}, "policyTypes": ["Egress"]})
    other = policy({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress", "Egress"]})
    assert isolation_labels(web, []) == {}
    assert isolation_labels(web, [other]) == {}
    assert isolation_labels(web, [deny_in]) == {ISOLATED["Ingress"]: "true"}
    assert isolation_labels(web, [deny_in, deny_out]) == {ISOLATED["Ingress"]: "true", ISOLATED["Egress"]: "true"}


@pytest.mark.kube
def test_copies_follow_the_tenants_policies_and_isolated_pods_are_marked(make_vcluster):
    vc = make_vcluster("netpol")
    tenant = client.NetworkingV1Api(vc.tenant.api)
    vc.tenant.core.create_namespaced_pod("default", {"metadata": {"name": "web", "labels": {"app": "web"}},
                                                     "spec": {"containers": [{"name": "a", "image": "x"}]}})
    web = eventually(lambda: [p for p in vc.host_pods() if p.metadata.annotations[names.ANN_NAME] == "web"],
                     what="the host pod")[0]
    assert ISOLATED["Ingress"] not in (web.metadata.labels or {})

    tenant.create_namespaced_network_policy("default", {"metadata": {"name": "only-shop"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "shop"}}},
                              {"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}})
    on_host = client.NetworkingV1Api(vc.operator.api)

    def copy():
        return [p for p in on_host.list_namespaced_network_policy(vc.host_namespace).items
                if (p.metadata.annotations or {}).get(names.ANN_NAME) == "only-shop"]

    host_policy = eventually(copy, what="the host copy")[0]
    assert [peer.pod_selector.match_labels for peer in host_policy.spec.ingress[0]._from] == [{"app": "shop"}]
    eventually(lambda: [e for e in vc.tenant.core.list_namespaced_event("default").items
                        if e.reason == "PeersDropped" and "10.0.0.0/8" in e.message], what="the drop, told")
    eventually(lambda: vc.operator.core.read_namespaced_pod(web.metadata.name, vc.host_namespace)
               .metadata.labels.get(ISOLATED["Ingress"]) == "true", what="the host pod marked isolated")

    tenant.delete_namespaced_network_policy("only-shop", "default")
    eventually(lambda: not copy(), what="the host copy gone")
    eventually(lambda: ISOLATED["Ingress"] not in vc.operator.core.read_namespaced_pod(
        web.metadata.name, vc.host_namespace).metadata.labels, what="the mark gone")


def test_the_vcluster_wide_policies_skip_isolated_pods_but_the_ingress_controllers_reach_all():
    ingress, controllers, egress = manifests.network_policies("ns", TEST_LABELS)
    assert not selector_matches(ingress["spec"]["podSelector"], {ISOLATED["Ingress"]: "true"})
    assert selector_matches(ingress["spec"]["podSelector"], {ISOLATED["Egress"]: "true"})
    assert not selector_matches(egress["spec"]["podSelector"], {ISOLATED["Egress"]: "true"})
    assert controllers["spec"]["podSelector"] == {}


def reachable(host_cluster, namespace: str, pod: str, address: str) -> bool:
    """Whether a TCP connection from host pod `pod` to `address` opens within 2 s."""
    script = connect(address, "target")
    result = kubectl(host_cluster.admin_kubeconfig, "-n", namespace, "exec", pod, "--", "sh", "-c", script)
    return result.stdout.strip() == "target=open"


@pytest.mark.realnode
def test_tenant_policies_are_enforced_on_the_real_node_and_never_reach_beyond_the_vcluster(
        make_real_vcluster, real_host_cluster):
    """kube-router enforces the host copies: a tenant narrows its pods' traffic, and a
    policy naming "every namespace" or a private address gives nothing beyond the
    vcluster (an outsider pod in another host namespace stays out)."""
    vc = make_real_vcluster("np-real")
    host_kube = HostKube(real_host_cluster.admin_kubeconfig.read_text())
    for manifest in manifests.network_policies(vc.host_namespace, TEST_LABELS):
        host_kube.apply(manifest)
    pods = {name: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                       "name": "main", "image": reference("busybox"), "resources": SMALL,
                       "command": ["sh", "-c", HTTPD.format(marker=name)]}]}} for name in ("web", "good", "bad")}
    for body in pods.values():
        vc.tenant.core.create_namespaced_pod("default", body)
    outsiders = new_namespace(vc.operator.core, "outsider")
    run_pod(real_host_cluster, outsiders, "outsider", "exec sleep 3600")
    ips = {name: eventually(lambda n=name: vc.tenant.core.read_namespaced_pod(n, "default").status.pod_ip,
                            timeout=120, what=f"{name} running") for name in pods}
    web = f"{ips['web']}:{HTTP_PORT}"

    def can(source: str, address: str) -> bool:
        return reachable(real_host_cluster, vc.host_namespace, vc.host_name(source), address)

    eventually(lambda: can("good", web) and can("bad", web), timeout=60, what="the vcluster's pods reach each other")
    assert not reachable(real_host_cluster, outsiders, "outsider", web), "the vcluster's isolation"

    tenant = client.NetworkingV1Api(vc.tenant.api)
    tenant.create_namespaced_network_policy("default", {"metadata": {"name": "web-from-good"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "good"}}}]}]}})
    eventually(lambda: not can("bad", web), timeout=60, what="bad shut out of web")
    assert can("good", web)

    tenant.create_namespaced_network_policy("default", {"metadata": {"name": "web-from-everyone"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}})
    eventually(lambda: can("bad", web), timeout=60, what="every pod of the vcluster let in again")
    assert not reachable(real_host_cluster, outsiders, "outsider", web), "\"every namespace\" is the vcluster's"

    api = real_host_cluster.real_node().link.host_ip
    tenant.create_namespaced_network_policy("default", {"metadata": {"name": "good-to-web-only"}, "spec": {
        "podSelector": {"matchLabels": {"app": "good"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]},
                   {"to": [{"ipBlock": {"cidr": f"{api}/32"}}]}]}})
    eventually(lambda: not can("good", f"{ips['bad']}:{HTTP_PORT}"), timeout=60, what="good's egress narrowed")
    assert can("good", web)
    assert not can("good", f"{api}:{real_host_cluster.config.ports['kube-apiserver']}"), "the host's API server"
