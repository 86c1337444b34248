"""The vcluster API server's only way out: what it calls "the cluster" (webhooks and
aggregated APIs by Service, the pods/services proxy, kubelet calls) goes through the
syncer, which lets through only what belongs to its vcluster.

The API server's egress selector (controlplane.components.egress_selector_configuration)
sends each such connection as `CONNECT host:port` over a unix socket that only it and
the syncer can open (0600). The syncer answers:

- the syncer's own listeners (its kubelet and metrics APIs): connected directly;
- a ClusterIP of one of the vcluster's Services, on one of its ports: a ready endpoint
  pod of that Service, at the port its Endpoints give;
- the IP of one of the vcluster's pods: that pod;
- anything else, the host's API server, a node, another tenant's Service or pod, the
  machine's loopback: 403, and the API server fails the call (a webhook's failure policy
  decides the rest).

A pod is reached through the host API's `pods/portforward` of its host copy, with the
syncer's host credentials, over WebSocket (`v4.channel.k8s.io`): no network path from
the control plane to the pods is needed, in either runtime, and nothing reaches a pod
this syncer did not sync.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import select
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from .kube import ENDPOINTS, PODS, SERVICES, Connection
from .kubelet import CHUNK, NotServed, connect_host, pending, splice, synced_host_pod
from .tlsserver import BACKLOG, HEAD_TIMEOUT

if TYPE_CHECKING:
    from .controller import SyncContext

logger = logging.getLogger(__name__)

MAX_HEAD = 8192
CHANNEL_PROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1  # a port's two channels
OPCODES = {"continuation": 0x0, "binary": 0x2, "close": 0x8, "ping": 0x9, "pong": 0xA}


@dataclass(frozen=True)
class Direct:
    address: tuple[str, int]


@dataclass(frozen=True)
class PodPort:
    namespace: str  # of the virtual pod
    pod: str
    port: int


# Where a CONNECT may go ---------------------------------------------------------------
def resolve(ctx: SyncContext, own: set[tuple[str, int]], host: str, port: int) -> Direct | PodPort:
    """Where `host:port` leads inside this vcluster; NotServed(403) if nowhere."""
    if (host, port) in own:
        return Direct((host, port))
    for service in ctx.vinf[SERVICES].values():
        if host in _cluster_ips(service):
            return _endpoint(ctx, service, port)
    for pod in ctx.vinf[PODS].values():
        if host in _pod_ips(pod):
            meta = pod["metadata"]
            return PodPort(meta["namespace"], meta["name"], port)
    raise NotServed(403, f"{host}:{port} is not a Service, pod or API of this vcluster")


def _endpoint(ctx: SyncContext, service: dict, port: int) -> PodPort:
    meta = service["metadata"]
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == port]
    if not ports:
        raise NotServed(403, f"Service {meta['namespace']}/{meta['name']} has no port {port}")
    name = ports[0].get("name")
    endpoints = ctx.vinf[ENDPOINTS].get(f"{meta['namespace']}/{meta['name']}") or {}
    ready = []
    for subset in endpoints.get("subsets") or []:
        numbers = [p["port"] for p in subset.get("ports") or [] if p.get("name") == name]
        # Only addresses that name a pod: hand-written ones could name anything.
        pods = [a["targetRef"]["name"] for a in subset.get("addresses") or []
                if (a.get("targetRef") or {}).get("kind") == "Pod"]
        ready += [PodPort(meta["namespace"], pod, numbers[0]) for pod in pods if numbers]
    if not ready:
        raise NotServed(503, f"Service {meta['namespace']}/{meta['name']} has no ready pod for port {port}")
    return random.choice(ready)


def _cluster_ips(service: dict) -> list[str]:
    spec = service.get("spec") or {}
    return [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]


def _pod_ips(pod: dict) -> list[str]:
    return [entry["ip"] for entry in (pod.get("status") or {}).get("podIPs") or [] if entry.get("ip")]


def parse_connect(head: bytes) -> tuple[str, int]:
    """`CONNECT host:port HTTP/1.1` → (host, port); NotServed(400) for anything else."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = line.partition(" ")
    target = rest.rsplit(" ", 1)[0] if rest.endswith(("HTTP/1.1", "HTTP/1.0")) else ""
    host, _, port = target.rpartition(":")
    if method != "CONNECT" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NotServed(400, "only CONNECT host:port is served")
    return host.strip("[]"), int(port)


# WebSocket port-forward -----------------------------------------------------------------
def frame(payload: bytes, opcode: int = OPCODES["binary"]) -> bytes:
    """One masked, final WebSocket frame (a client's)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + mask + _masked(payload, mask)


def _masked(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR the repeated 4-byte `key` (masking and unmasking are one operation),
    as one big-integer XOR: a byte-by-byte loop took milliseconds per 64 KiB chunk."""
    size = len(payload)
    repeated = (bytes(key) * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


class FrameReader:
    """Frames from bytes as they arrive: (opcode, payload) of each whole one."""

    def __init__(self, data: bytes = b""):
        self.buffer = bytearray(data)

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def frames(self) -> Iterator[tuple[int, bytes]]:
        while len(self.buffer) >= 2:
            opcode, size, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                size, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                size, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            masked = self.buffer[1] & 0x80
            start = offset + (4 if masked else 0)
            if len(self.buffer) < start + size:
                return
            payload = bytes(self.buffer[start:start + size])
            if masked:
                key = self.buffer[offset:offset + 4]
                payload = _masked(payload, key)
            del self.buffer[:start + size]
            yield opcode, payload


def open_port_forward(connection: Connection, namespace: str, pod: str, port: int) -> tuple[socket.socket, bytes]:
    """A WebSocket to the host API's pods/portforward of `pod` on `port`; (socket, bytes
    read past the handshake)."""
    url = urlsplit(connection.server)
    sock = connect_host(connection, url.hostname, url.port or 443)
    path = f"{url.path.rstrip('/')}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward?ports={port}"
    lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", "User-Agent: vcportal-syncer-egress",
             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
             f"Sec-WebSocket-Protocol: {CHANNEL_PROTOCOL}"]
    if connection.token:
        lines.append(f"Authorization: Bearer {connection.token}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head, rest = _read_head(sock, "the host API server closed the port-forward")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if status_line.split(" ")[1:2] != ["101"]:
        sock.close()
        reason = rest[:300].decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")
        raise NotServed(502, f"the host refused the port-forward: {status_line} {reason}".strip())
    return sock, rest


def _read_head(sock: socket.socket, failure: str) -> tuple[bytes, bytes]:
    """An HTTP head and what came after it; NotServed(502, `failure`) if it does not come whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(CHUNK)
        if not chunk or len(data) > MAX_HEAD:
            raise NotServed(502, failure)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def relay_port_forward(client: socket.socket, ws: socket.socket, leftover: bytes) -> None:
    """Bytes from `client` as frames of the data channel; the data channel's frames back,
    each channel's first two bytes (the port) dropped; an error on the error channel
    logged and the connection ended. One thread (the SSL socket's rule)."""
    reader, skip = FrameReader(leftover), {DATA: 2, ERROR: 2}
    channel = DATA
    while True:
        for opcode, payload in reader.frames():
            if opcode == OPCODES["close"]:
                return
            if opcode == OPCODES["ping"]:
                ws.sendall(frame(payload, OPCODES["pong"]))
                continue
            if opcode != OPCODES["continuation"] and payload:
                channel, payload = payload[0], payload[1:]
            cut = min(skip.get(channel, 0), len(payload))
            skip[channel] = skip.get(channel, 0) - cut
            payload = payload[cut:]
            if channel == ERROR and payload:
                logger.info("egress: the port-forward failed: %s", payload.decode(errors="replace"))
                return
            if channel == DATA and payload:
                client.sendall(payload)
        ready = [ws] if pending(ws) else select.select([client, ws], [], [])[0]
        if client in ready:
            data = client.recv(CHUNK)
            if not data:
                ws.sendall(frame(b"", OPCODES["close"]))
                return
            ws.sendall(frame(bytes([DATA]) + data))
        if ws in ready:
            data = ws.recv(CHUNK)
            if not data:
                return
            reader.feed(data)


# The server -------------------------------------------------------------------------------
class EgressProxy(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, path: Path, resolve_target: Callable[[str, int], Direct | PodPort],
                 host_pod_of: Callable[[PodPort], tuple[str, str]], host: Callable[[], Connection]):
        self.resolve_target, self.host_pod_of, self.host = resolve_target, host_pod_of, host
        path.unlink(missing_ok=True)
        super().__init__(str(path), _Handler)
        # Only its owner (the API server runs as the syncer's user); its directory is
        # private as well (a cluster's state directory, or the pod's volume).
        os.chmod(path, 0o600)

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="egress", daemon=True).start()


class _Handler(socketserver.BaseRequestHandler):
    server: EgressProxy

    def handle(self):
        client = self.request
        client.settimeout(HEAD_TIMEOUT)
        try:
            head, rest = _read_head(client, "no CONNECT came")
            host, port = parse_connect(head)
            target = self.server.resolve_target(host, port)
            upstream, leftover = self._open(target)
        except NotServed as exc:
            logger.info("egress: refused: %s", exc)
            client.sendall(f"HTTP/1.1 {exc.status} {exc}\r\nContent-Length: 0\r\n\r\n".encode("latin-1", "replace"))
            return
        except OSError as exc:
            logger.warning("egress: %s", exc)
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        logger.debug("egress: %s:%s → %s", host, port, target)
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for sock in (client, upstream):
                sock.settimeout(None)
            if isinstance(target, Direct):
                if rest:
                    upstream.sendall(rest)
                splice(client, upstream)
            else:
                if rest:
                    upstream.sendall(frame(bytes([DATA]) + rest))
                relay_port_forward(client, upstream, leftover)

    def _open(self, target: Direct | PodPort) -> tuple[socket.socket, bytes]:
        if isinstance(target, Direct):
            return socket.create_connection(target.address, timeout=HEAD_TIMEOUT), b""
        host_namespace, host_pod = self.server.host_pod_of(target)
        return open_port_forward(self.server.host(), host_namespace, host_pod, target.port)


def host_pod_of(ctx: SyncContext, target: PodPort) -> tuple[str, str]:
    try:
        return synced_host_pod(ctx, target.namespace, target.pod, None)
    except NotServed:
        raise NotServed(503, f"pod {target.namespace}/{target.pod} has no host copy of this syncer") from None
