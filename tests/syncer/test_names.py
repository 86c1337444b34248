"""Host names: one scheme, valid lengths, stable hashes, no collisions between vclusters."""

from __future__ import annotations

import re

from syncer import names

DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
DNS_SUBDOMAIN_CHARS = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def test_short_names_follow_the_readable_scheme():
    assert names.host_name("web", "default", "team-a") == "web-x-default-x-team-a"


def test_a_name_of_exactly_63_characters_is_kept_whole():
    name = names.host_name("a" * (63 - len("-x-ns-x-vc")), "ns", "vc")
    assert len(name) == 63 and name.endswith("-x-ns-x-vc")


def test_longer_names_are_cut_to_63_with_a_stable_hash_of_the_whole():
    long = names.host_name("a" * 200, "n" * 63, "v" * 40)
    assert len(long) <= 63
    assert long == names.host_name("a" * 200, "n" * 63, "v" * 40)
    assert long != names.host_name("a" * 199, "n" * 63, "v" * 40)
    assert re.search(r"-[0-9a-f]{16}\Z", long)


def test_a_service_name_stays_a_dns_1035_label_at_any_length():
    for name in ("s", "s" * 63, "s-" * 31 + "s"):
        host = names.host_name(name, "n" * 63, "v" * 40)
        assert DNS_1035_LABEL.match(host), host


def test_dots_and_dashes_at_the_cut_are_not_left_before_the_hash():
    host = names.host_name("a" * 51 + ".b" * 40, "ns", "vc")
    assert DNS_SUBDOMAIN_CHARS.match(host) and ".-" not in host and "--" not in host[-12:]


def test_two_vclusters_never_share_a_host_name_for_the_same_object():
    for name in ("web", "w" * 100):
        assert names.host_name(name, "default", "one") != names.host_name(name, "default", "two")


def test_parts_that_could_blur_into_the_separators_get_distinct_hashed_names():
    triples = [("a-x-b", "c", "vc"), ("a", "b-x-c", "vc"), ("a-x", "b", "vc"), ("a", "x-b", "vc"),
               ("a", "x", "x-vc"), ("a-x", "x", "vc"), ("a-x-b" + "c" * 60, "d", "vc"), ("a", "b" + "c" * 50 + "-x-d", "vc")]
    host_names = [names.host_name(*t) for t in triples]
    assert len(set(host_names)) == len(triples)
    assert all(re.search(r"-[0-9a-f]{16}\Z", n) for n in host_names)


def test_readable_names_split_back_into_their_parts_one_way_only():
    for triple in (("web", "default", "vc"), ("xa", "y", "z"), ("ax", "xb", "x1"), ("a-xb", "b-ya", "vc")):
        host = names.host_name(*triple)
        assert host.split(names.SEPARATOR) == list(triple)


def test_a_pods_tokens_trust_bundles_and_certificates_have_names_no_synced_object_can_take():
    for pod in ("web-x-default-x-vc", "p" * 63):
        for name, what in ((names.token_secret_name(pod), "token"), (names.trust_bundles_name(pod), "bundles"),
                           (names.certificates_name(pod), "certs")):
            assert len(name) <= 63 and re.search(rf"-{what}-[0-9a-f]{{16}}\Z", name)
            assert not name.endswith("-x-vc")


def test_marks_record_the_virtual_object_and_are_recognised_only_for_their_vcluster():
    virtual = {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}}
    labels, annotations = names.marks("team-a", "Pod", virtual)
    host = {"metadata": {"name": "web-x-shop-x-team-a", "labels": labels, "annotations": annotations}}

    assert names.is_ours(host, "team-a")
    assert not names.is_ours(host, "team-b")
    assert names.recorded_key(host) == "shop/web"
    assert names.recorded_uid(host) == "u-1"
    assert names.recorded_kind(host) == "Pod"
    assert not names.is_ours({"metadata": {"labels": labels}}, "team-a"), "labels alone are not a record"


def test_tenant_keys_under_our_prefix_are_dropped():
    assert names.without_reserved({"app": "x", "vcportal.io/managed-by": "other"}) == {"app": "x"}
