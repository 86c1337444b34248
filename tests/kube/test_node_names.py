"""Names and addresses of a real node's network, and the image references file: pure
functions, no root needed."""

import ipaddress
from pathlib import Path

import pytest

from controlplane import images
from localkube.network import LINK_RANGE, NodeLink, cluster_id


def test_a_link_has_a_host_and_a_node_address_in_one_slash_30_of_the_range():
    link = NodeLink("0123abcd", 5)
    subnet = ipaddress.ip_network(f"{link.host_ip}/30", strict=False)
    assert subnet.subnet_of(LINK_RANGE)
    assert ipaddress.ip_address(link.node_ip) in subnet
    assert (link.host_ip, link.node_ip) == ("10.99.0.21", "10.99.0.22")


def test_names_fit_the_kernels_limits_and_differ_between_state_directories():
    first = NodeLink(cluster_id(Path("/var/a")), 0)
    second = NodeLink(cluster_id(Path("/var/b")), 0)
    assert len(first.host_interface) <= 15  # IFNAMSIZ - 1
    assert len(first.chain) <= 28  # iptables chain names
    assert {first.netns, first.host_interface, first.chain}.isdisjoint(
        {second.netns, second.host_interface, second.chain}
    )


def test_image_references_are_read_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPORTAL_IMAGES_CACHE", str(tmp_path))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "refs").write_text(
        "127.0.0.1:5390/busybox:1.35.0-abc\n127.0.0.1:5390/pause:1.35.0-abc\n"
    )
    assert images.reference("busybox") == "127.0.0.1:5390/busybox:1.35.0-abc"
    assert images.registry_address() == "127.0.0.1:5390"
    with pytest.raises(images.ImagesMissing, match="make images"):
        images.reference("coredns")


def test_missing_references_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPORTAL_IMAGES_CACHE", str(tmp_path))
    with pytest.raises(images.ImagesMissing, match="Run `make images`"):
        images.reference("busybox")
