"""The vcluster API server's way out (syncer.egress), its pure parts: where a CONNECT may
go (and the escapes it refuses), and the WebSocket port-forward framing."""

from __future__ import annotations

import socket
import struct
import threading
from types import SimpleNamespace

import pytest

from syncer import egress
from syncer.kube import ENDPOINTS, PODS, SERVICES
from syncer.kubelet import NotServed

OWN = {("127.0.0.1", 10250), ("127.0.0.1", 10251)}


class Store(dict):
    def values(self):
        return list(super().values())


def context() -> SimpleNamespace:
    service = {"metadata": {"name": "hook", "namespace": "policy"},
               "spec": {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"],
                        "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}
    endpoints = {"metadata": {"name": "hook", "namespace": "policy"},
                 "subsets": [{"addresses": [{"ip": "10.88.0.9", "targetRef": {"kind": "Pod", "name": "hook-1"}}],
                              "ports": [{"name": "https", "port": 8443}]}]}
    empty = {"metadata": {"name": "idle", "namespace": "policy"},
             "spec": {"clusterIP": "10.96.7.8", "ports": [{"port": 80}]}}
    pod = {"metadata": {"name": "hook-1", "namespace": "policy"}, "status": {"podIPs": [{"ip": "10.88.0.9"}]}}
    return SimpleNamespace(vinf={SERVICES: Store({"policy/hook": service, "policy/idle": empty}),
                                 ENDPOINTS: Store({"policy/hook": endpoints}), PODS: Store({"policy/hook-1": pod})})


def test_the_syncers_own_apis_are_reached_directly():
    assert egress.resolve(context(), OWN, "127.0.0.1", 10251) == egress.Direct(("127.0.0.1", 10251))


def test_a_services_address_leads_to_a_ready_pod_at_its_target_port():
    assert egress.resolve(context(), OWN, "10.96.7.7", 443) == egress.PodPort("policy", "hook-1", 8443)


def test_a_pods_address_leads_to_that_pod():
    assert egress.resolve(context(), OWN, "10.88.0.9", 9090) == egress.PodPort("policy", "hook-1", 9090)


@pytest.mark.parametrize("host, port, status", [
    ("10.96.0.1", 443, 403),  # the host's API server, by its Service address
    ("10.99.0.1", 6443, 403),  # the host's API server, by the node link
    ("10.99.0.2", 10250, 403),  # the real node's kubelet
    ("169.254.169.254", 80, 403),  # cloud metadata
    ("127.0.0.1", 2379, 403),  # the machine's loopback, beside the syncer's own ports
    ("10.96.7.7", 80, 403),  # a Service of the vcluster, on a port it does not have
    ("10.96.7.8", 80, 503),  # a Service of the vcluster without a ready pod
    ("kubernetes.default.svc", 443, 403),
])
def test_anything_else_is_refused(host, port, status):
    with pytest.raises(NotServed) as refused:
        egress.resolve(context(), OWN, host, port)
    assert refused.value.status == status


@pytest.mark.parametrize("head, expected", [
    (b"CONNECT 10.96.7.7:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", ("10.96.7.7", 443)),
    (b"CONNECT [fd00::1]:443 HTTP/1.1\r\n\r\n", ("fd00::1", 443)),
])
def test_a_connect_names_its_target(head, expected):
    assert egress.parse_connect(head) == expected


@pytest.mark.parametrize("head", [b"GET / HTTP/1.1\r\n\r\n", b"CONNECT 10.0.0.1 HTTP/1.1\r\n\r\n",
                                  b"CONNECT 10.0.0.1:99999 HTTP/1.1\r\n\r\n", b"CONNECT :443 HTTP/1.1\r\n\r\n"])
def test_anything_but_a_connect_is_a_bad_request(head):
    with pytest.raises(NotServed) as refused:
        egress.parse_connect(head)
    assert refused.value.status == 400


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_frames_read_back_whole_even_when_they_arrive_in_pieces(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = egress.frame(payload) + egress.frame(b"x", egress.OPCODES["ping"])
    reader, frames = egress.FrameReader(), []
    for i in range(0, len(data), 7000):
        reader.feed(data[i:i + 7000])
        frames += list(reader.frames())
    assert frames == [(egress.OPCODES["binary"], payload), (egress.OPCODES["ping"], b"x")]


def server_frame(payload: bytes) -> bytes:
    """An unmasked frame, as the API server sends them."""
    return struct.pack("!BB", 0x82, len(payload)) + payload


def test_the_relay_frames_the_clients_bytes_and_strips_the_ports_from_the_pods():
    client, api_server = socket.socketpair()
    ws, pod_side = socket.socketpair()
    port = struct.pack("<H", 8443)
    leftover = server_frame(b"\x00" + port) + server_frame(b"\x01" + port)
    relay = threading.Thread(target=egress.relay_port_forward, args=(client, ws, leftover), daemon=True)
    relay.start()
    api_server.sendall(b"request")
    reader = egress.FrameReader()
    while not (got := list(reader.frames())):
        reader.feed(pod_side.recv(4096))
    assert got == [(egress.OPCODES["binary"], b"\x00request")]
    pod_side.sendall(server_frame(b"\x00answer"))
    assert api_server.recv(4096) == b"answer"
    pod_side.sendall(server_frame(b"\x01" + b"connection refused"))  # an error ends it
    relay.join(5)
    assert not relay.is_alive()


def test_a_burst_of_connections_waits_to_be_accepted_rather_than_being_refused(tmp_path):
    # The vcluster's API server opens many at once (a webhook call per write): with
    # socketserver's backlog of 5 the sixth connect failed with EAGAIN.
    path = tmp_path / "egress.sock"
    proxy = egress.EgressProxy(path, resolve_target=None, host_pod_of=None, host=None)  # never accepting here
    clients = []
    try:
        for _ in range(64):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            clients.append(client)
            client.connect(str(path))
    finally:
        for client in clients:
            client.close()
        proxy.server_close()
