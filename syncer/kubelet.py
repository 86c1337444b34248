"""The vcluster's kubelet API, served by the syncer: logs, exec, attach and port-forward.

The vcluster's API server answers `kubectl logs/exec/attach/port-forward` by calling
the kubelet of the pod's Node. Every virtual Node names this endpoint (syncer.kinds.
nodes), so those calls land here; each is mapped to the pod's host copy and forwarded
to the HOST API server's pods/log, pods/exec, pods/attach or pods/portforward, with
the syncer's host credentials. vcluster works the same way. The vcluster's API server
never holds host credentials nor needs to reach a host node, and the tenant never
learns a host address.

TLS both ways: the serving certificate comes from the vcluster's CA (the API server
verifies it with --kubelet-certificate-authority), and a client must present a
certificate from that CA, which is the API server's kubelet-client certificate;
anything else fails the handshake. Only pods this syncer synced are reachable: another
vcluster's pod, or a host pod, is "not found".

One thread per connection. The request head is rewritten (path, query, credentials,
and only the headers an upgrade needs); after it the connection is spliced, bytes both
ways until either side closes, so upgrades (SPDY from the API server, WebSocket too)
and followed logs pass as they come. Upstream is always asked to close after its
answer: no spliced connection is reused.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from . import names
from .kube import PODS, Connection
from .tlsserver import HEAD_TIMEOUT, TLSServer, handshake

if TYPE_CHECKING:
    from .controller import SyncContext

logger = logging.getLogger(__name__)

# The kubelet's paths → the host API's pod subresources.
SUBRESOURCES = {"containerLogs": "log", "exec": "exec", "attach": "attach", "portForward": "portforward"}
# Query parameters of the kubelet's streaming calls → the API's (PodExecOptions, PodAttachOptions).
STREAM_PARAMS = {"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty", "command": "command"}
ATTACH_PARAMS = {k: v for k, v in STREAM_PARAMS.items() if k != "command"}
LOG_PARAMS = frozenset({"follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines",
                        "limitBytes", "stream"})
# The only client headers forwarded: what an upgrade (SPDY or WebSocket) and a body need.
FORWARDED_HEADERS = frozenset({"upgrade", "x-stream-protocol-version", "sec-websocket-key",
                               "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions",
                               "content-type", "content-length"})
CHUNK = 64 * 1024


class NotServed(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KubeletCall:
    """A kubelet API request, parsed from its path."""

    subresource: str  # of the API's pod: log, exec, attach or portforward
    namespace: str
    pod: str
    uid: str | None = None
    container: str | None = None


def parse_path(path: str) -> KubeletCall:
    """/containerLogs/{ns}/{pod}/{container}, /exec|attach/{ns}/{pod}[/{uid}]/{container},
    /portForward/{ns}/{pod}[/{uid}] → KubeletCall; NotServed(404) for anything else."""
    action, *parts = [unquote(p) for p in urlsplit(path).path.split("/")[1:]] or [""]
    if action not in SUBRESOURCES or not all(parts):
        raise NotServed(404, f"no kubelet API at {urlsplit(path).path}")
    subresource = SUBRESOURCES[action]
    shapes = {"log": (3,), "exec": (3, 4), "attach": (3, 4), "portforward": (2, 3)}[subresource]
    if len(parts) not in shapes:
        raise NotServed(404, f"no kubelet API at {urlsplit(path).path}")
    namespace, pod, *rest = parts
    if subresource == "portforward":
        return KubeletCall(subresource, namespace, pod, uid=rest[0] if rest else None)
    uid = rest[0] if len(rest) == 2 else None
    return KubeletCall(subresource, namespace, pod, uid=uid, container=rest[-1])


def host_query(call: KubeletCall, query: str) -> list[tuple[str, str]]:
    """The API's query parameters for the kubelet's `query` (repeated keys kept)."""
    params = parse_qsl(query, keep_blank_values=True)
    if call.subresource == "log":
        mapped = [(k, v) for k, v in params if k in LOG_PARAMS]
    elif call.subresource == "portforward":
        mapped = [("ports", v) for k, v in params if k == "port"]
    else:
        allowed = STREAM_PARAMS if call.subresource == "exec" else ATTACH_PARAMS
        mapped = [(allowed[k], v) for k, v in params if k in allowed]
    if call.container:
        mapped.append(("container", call.container))
    return mapped


def host_path(call: KubeletCall, host_namespace: str, host_pod: str, query: str, prefix: str = "") -> str:
    """The host API's path and query for `call` on the host pod."""
    path = f"{prefix}/api/v1/namespaces/{quote(host_namespace)}/pods/{quote(host_pod)}/{call.subresource}"
    params = host_query(call, query)
    return f"{path}?{urlencode(params)}" if params else path


def upstream_head(method: str, target: str, headers: list[tuple[str, str]], host: str, token: str | None) -> bytes:
    """The request head sent upstream: the client's method, the host `target` and only
    FORWARDED_HEADERS of the client's; our own credentials; always closed after.

    A plain request (logs) goes as HTTP/1.0, so the answer's body ends with the connection
    instead of being chunked: the API server's WebSocket log stream (wsstream's
    messageCopy) drops the bytes of a read that also returns EOF, which Go's chunked
    reader returns when the last chunk arrived with the data, as the host sends a short
    log. A kubelet, which answers with its own pace, never sends both at once."""
    upgrade = any(name.lower() == "upgrade" for name, _ in headers)
    version = "HTTP/1.1" if upgrade else "HTTP/1.0"
    lines = [f"{method} {target} {version}", f"Host: {host}", "User-Agent: vcportal-syncer-kubelet"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    # A folded value is unfolded: each header stays one line.
    lines += [f"{name}: {' '.join(value.split())}" for name, value in headers if name.lower() in FORWARDED_HEADERS]
    lines.append("Connection: Upgrade, close" if upgrade else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# A pod in the vcluster (namespace, name, uid or None) → (host namespace, host pod name).
HostPodOf = Callable[[str, str, "str | None"], "tuple[str, str]"]


def synced_host_pod(ctx: SyncContext, namespace: str, pod: str, uid: str | None) -> tuple[str, str]:
    """The host copy of a virtual pod, if this syncer made it; NotServed(404) otherwise,
    which is all a pod of another vcluster or of the host ever gets."""
    vpod = ctx.vinf[PODS].get(f"{namespace}/{pod}")
    host_name = ctx.target.name(pod, namespace)
    hpod = ctx.hinf[PODS].get(f"{ctx.target.namespace}/{host_name}")
    if vpod is None or hpod is None or not names.is_ours(hpod, ctx.vcluster) \
            or names.recorded_uid(hpod) != vpod["metadata"]["uid"] or uid not in (None, vpod["metadata"]["uid"]):
        raise NotServed(404, f'pod "{pod}" in namespace "{namespace}" is not running on this node')
    return ctx.target.namespace, host_name


class KubeletServer(TLSServer):
    name = "kubelet API"

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, host_pod_of: HostPodOf,
                 host: Callable[[], Connection]):
        """`host()` gives the current host connection (server, TLS, token) per request,
        so rotated credentials are used as soon as the syncer reloads them."""
        self.host_pod_of, self.host = host_pod_of, host
        super().__init__(address, context, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: KubeletServer
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # unbuffered: after the head, every byte the client sent is still in the socket

    def handle(self):
        if not handshake(self):
            return
        self.close_connection = True
        self.handle_one_request()

    def do_GET(self):
        try:
            call = parse_path(self.path)
            host_namespace, host_pod = self.server.host_pod_of(call.namespace, call.pod, call.uid)
        except NotServed as exc:
            self._answer(exc.status, str(exc))
            return
        logger.info("kubelet API: %s %s/%s → host pod %s/%s (upgrade: %s)", call.subresource, call.namespace,
                    call.pod, host_namespace, host_pod, self.headers.get("Upgrade") or "none")
        self._forward(call, host_namespace, host_pod)

    do_POST = do_GET

    def _forward(self, call: KubeletCall, host_namespace: str, host_pod: str) -> None:
        connection = self.server.host()
        url = urlsplit(connection.server)
        target = host_path(call, host_namespace, host_pod, urlsplit(self.path).query, url.path.rstrip("/"))
        try:
            upstream = connect_host(connection, url.hostname, url.port or 443)
        except OSError as exc:
            logger.warning("kubelet API: cannot reach the host API server: %s", exc)
            self._answer(502, "the host API server cannot be reached")
            return
        with upstream:
            upstream.sendall(upstream_head(self.command, target, list(self.headers.items()), url.netloc,
                                           connection.token))
            for sock in (upstream, self.request):
                sock.settimeout(None)  # a session may idle as long as the user likes
            splice(self.request, upstream)

    def _answer(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the default would log every request line to stderr
        pass


def connect_host(connection: Connection, hostname: str, port: int) -> ssl.SSLSocket:
    """A TLS connection to the host API server, verified as the syncer's kubeconfig says."""
    sock = socket.create_connection((hostname, port), timeout=HEAD_TIMEOUT)
    try:
        return connection.ssl_context.wrap_socket(sock, server_hostname=hostname)
    except OSError:
        sock.close()
        raise


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between `a` and `b` (TLS or not) until either side closes.
    One thread: an SSL socket must not be read and written by two threads at once."""
    peers = {a: b, b: a}
    while True:
        ready = [s for s in peers if pending(s)] or select.select(list(peers), [], [])[0]
        for sock in ready:
            try:
                data = sock.recv(CHUNK)
                if data:
                    peers[sock].sendall(data)
            except (ssl.SSLError, OSError):
                data = b""
            if not data:
                return


def pending(sock: socket.socket) -> int:
    """Bytes a TLS socket has decrypted but not handed out yet (select cannot see them)."""
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
