"""The syncer's kubelet API, its pure parts: which calls it serves, and what it sends
upstream. tests/syncer/test_kubelet_proxy.py drives it with kubectl on a real node."""

from __future__ import annotations

import pytest

from syncer.kubelet import KubeletCall, NotServed, host_path, parse_path, upstream_head


@pytest.mark.parametrize("path, call", [
    ("/containerLogs/shop/web-1/app?follow=true", KubeletCall("log", "shop", "web-1", container="app")),
    ("/exec/shop/web-1/app?command=id&output=1", KubeletCall("exec", "shop", "web-1", container="app")),
    ("/exec/shop/web-1/uid-1/app", KubeletCall("exec", "shop", "web-1", uid="uid-1", container="app")),
    ("/attach/shop/web-1/app", KubeletCall("attach", "shop", "web-1", container="app")),
    ("/attach/shop/web-1/uid-1/app", KubeletCall("attach", "shop", "web-1", uid="uid-1", container="app")),
    ("/portForward/shop/web-1", KubeletCall("portforward", "shop", "web-1")),
    ("/portForward/shop/web-1/uid-1?port=80", KubeletCall("portforward", "shop", "web-1", uid="uid-1")),
])
def test_the_kubelet_paths_are_parsed(path, call):
    assert parse_path(path) == call


@pytest.mark.parametrize("path", [
    "/", "/pods", "/stats/summary", "/run/shop/web-1/app", "/containerLogs/shop/web-1",
    "/containerLogs/shop/web-1/app/extra", "/exec/shop/web-1", "/exec/shop//app", "/portForward/shop",
    "/portForward/shop/web-1/uid-1/extra",
])
def test_anything_else_is_not_found(path):
    with pytest.raises(NotServed) as refused:
        parse_path(path)
    assert refused.value.status == 404


def test_log_parameters_keep_their_names_and_gain_the_container():
    call = parse_path("/containerLogs/shop/web-1/app")
    assert host_path(call, "host-ns", "web-1-x-shop-x-vc", "follow=true&tailLines=10&timestamps=true&bogus=1") == (
        "/api/v1/namespaces/host-ns/pods/web-1-x-shop-x-vc/log?follow=true&tailLines=10&timestamps=true&container=app")


def test_exec_parameters_take_the_apis_names_and_keep_the_command_in_order():
    call = parse_path("/exec/shop/web-1/app")
    query = "command=sh&command=-c&command=echo+a%26b&input=1&output=1&error=1&tty=0"
    assert host_path(call, "host-ns", "h", query) == (
        "/api/v1/namespaces/host-ns/pods/h/exec?command=sh&command=-c&command=echo+a%26b"
        "&stdin=1&stdout=1&stderr=1&tty=0&container=app")


def test_attach_takes_no_command_and_port_forward_its_ports():
    attach = parse_path("/attach/shop/web-1/app")
    assert host_path(attach, "n", "h", "input=1&output=1&command=rm") == \
        "/api/v1/namespaces/n/pods/h/attach?stdin=1&stdout=1&container=app"
    forward = parse_path("/portForward/shop/web-1")
    assert host_path(forward, "n", "h", "port=80&port=8080", prefix="/k8s") == \
        "/k8s/api/v1/namespaces/n/pods/h/portforward?ports=80&ports=8080"
    assert host_path(forward, "n", "h", "") == "/api/v1/namespaces/n/pods/h/portforward"


def test_the_head_upstream_carries_our_credentials_the_upgrade_and_nothing_else_of_the_clients():
    client_headers = [
        ("Host", "127.0.0.1:10250"), ("Authorization", "Bearer someone-elses"), ("Upgrade", "SPDY/3.1"),
        ("Connection", "Upgrade"), ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io"), ("X-Forwarded-For", "10.0.0.1"),
        ("Impersonate-User", "admin"), ("User-Agent", "kube-apiserver"),
    ]
    head = upstream_head("POST", "/api/v1/namespaces/n/pods/h/exec?stdout=1", client_headers, "10.0.0.5:6443",
                         "host-token").decode()
    lines = head.split("\r\n")
    assert head.endswith("\r\n\r\n")
    assert lines[0] == "POST /api/v1/namespaces/n/pods/h/exec?stdout=1 HTTP/1.1"
    assert sorted(lines[1:-2]) == sorted([
        "Host: 10.0.0.5:6443", "User-Agent: vcportal-syncer-kubelet", "Authorization: Bearer host-token",
        "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v5.channel.k8s.io",
        "X-Stream-Protocol-Version: v4.channel.k8s.io", "Connection: Upgrade, close",
    ])


def test_a_folded_header_value_stays_on_one_line():
    head = upstream_head("GET", "/x", [("Upgrade", "websocket\r\n Host: elsewhere")], "h:1", None)
    assert head.split(b"\r\n")[3:5] == [b"Upgrade: websocket Host: elsewhere", b"Connection: Upgrade, close"]


def test_a_plain_request_is_closed_after_its_answer_whose_body_ends_with_the_connection():
    head = upstream_head("GET", "/api/v1/namespaces/n/pods/h/log", [("Connection", "keep-alive")], "h:1", "t")
    assert b"Connection: close\r\n" in head and b"keep-alive" not in head
    assert head.startswith(b"GET /api/v1/namespaces/n/pods/h/log HTTP/1.0\r\n"), "no chunked answer"
