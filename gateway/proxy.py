"""The gateway: /kube/vclusters/<id>/… forwarded to that vcluster's API server.

An ASGI application (served next to Django by gateway.asgi.Router). Every request is
checked (gateway.grants: services.authorize's query on the database threads, or its
row kept from a recent request until anything it depends on changes) and forwarded with
the vcluster's admin credentials plus impersonation of the person: user
`vcportal:<username>`, groups `vcportal:team:<slug>` and `vcportal:role:<role>`, so
the API server's RBAC (provisioning.rbac bindings) decides what they may do and its audit
log names them. The caller's own Authorization never reaches the API server, and a request
asking for another identity (Impersonate-*, `kubectl --as`) is refused with a Status
rather than quietly run as the person: one level of impersonation is the gateway's.

Responses are relayed as they arrive (watches, followed logs). WebSocket upgrades
(kubectl's exec, attach and port-forward since v1.30) are relayed frame by frame
with the subprotocol the API server chose. SPDY upgrades are answered with a Status
asking for WebSocket: relaying them would mean hijacking the raw connection, which
ASGI servers do not offer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from . import requestinfo
from .dbthreads import DatabaseThreads
from .grants import Grants
from .kubestatus import Refusal
from .models import TOKEN_PREFIX
from .recorder import Recorder
from .services import Grant
from .upstream import BadKubeconfig, Upstream, Upstreams, refused_handshake

logger = logging.getLogger(__name__)

PREFIX = "/kube/"
TARGET = re.compile(rb"\A/kube/vclusters/(\d{1,18})(/[^?#]*)?\Z")
# Request bodies are read whole before forwarding; the API server's own limit is 3 MiB.
MAX_BODY_BYTES = 8 * 2**20
# The API server's own limit for a request's headers (Go's http.DefaultMaxHeaderBytes);
# uvicorn sets none, so the gateway refuses more rather than carry them.
MAX_HEADER_BYTES = 2**20
# Never forwarded upstream: hop-by-hop headers, and the caller's credentials.
DROPPED_REQUEST_HEADERS = frozenset({
    b"host", b"connection", b"keep-alive", b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"content-length", b"authorization", b"cookie",
})
DROPPED_RESPONSE_HEADERS = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})
JSON_HEADERS = [(b"content-type", b"application/json")]
SPDY_MESSAGE = ("This gateway relays exec, attach and port-forward over WebSocket only, not SPDY. "
                "Use kubectl 1.30 or newer without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false / "
                "KUBECTL_PORT_FORWARD_WEBSOCKETS=false.")
IMPERSONATION_MESSAGE = ("Impersonation (kubectl --as, --as-group) is not available through the portal's gateway: "
                         "it already acts as you. Use the kubeconfig of the identity you want.")
# kubectl falls back to SPDY when its WebSocket attempt is refused; for this long the
# SPDY attempt gets the API server's answer to the WebSocket one instead of SPDY_MESSAGE.
REFUSAL_MEMORY_SECONDS = 30
# Close codes a close frame may carry (RFC 6455 7.4; 1005, 1006 and 1015 only report).
SENDABLE_CLOSE_CODES = frozenset({*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)})


class Gateway:
    def __init__(self, db: DatabaseThreads | None = None):
        self.db = db or DatabaseThreads()
        self.recorder = Recorder(self.db.run)
        self.grants = Grants(self.db.run)
        self.upstreams = Upstreams()
        # (user id, vcluster id, path) → (when, code, Status body) of refused WebSocket streams
        self._refused_streams: dict[tuple[int, int, str], tuple[float, int, bytes]] = {}

    async def start(self) -> None:
        self.recorder.start()
        self.grants.start()

    async def stop(self) -> None:
        await self.grants.stop()
        await self.recorder.stop()
        await self.upstreams.close()
        await asyncio.get_running_loop().run_in_executor(None, self.db.stop)

    async def __call__(self, scope, receive, send):
        self.recorder.start()
        self.grants.start()
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)

    # Shared ---------------------------------------------------------------------
    async def _admit(self, scope) -> tuple[Grant, Upstream, bytes, str, str]:
        """Check the request; returns the grant, the upstream, where the caller sees the
        API server's root (`/kube/vclusters/<id>`, or `` when addressed by its token), the
        API server's path and the query; or raises Refusal."""
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            raise Refusal(431, f"Request headers are larger than {MAX_HEADER_BYTES // 2**20} MiB.")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        match = TARGET.match(raw_path)
        if match is not None:
            vcluster_id, path = int(match[1]), match[2] or b"/"
            root = b"%svclusters/%d" % (PREFIX.encode(), vcluster_id)
        elif addressed_by_token(scope):
            vcluster_id, root, path = None, b"", raw_path
        else:
            raise Refusal(404, "Not a gateway path; use /kube/vclusters/<id>/ (the server in your kubeconfig).")
        grant = await self.grants.authorize(_bearer_token(scope), vcluster_id)
        if any(name.startswith(b"impersonate-") for name, _ in scope["headers"]):
            raise Refusal(403, IMPERSONATION_MESSAGE)
        try:
            upstream = await self.upstreams.get(grant.vcluster_id, grant.kubeconfig_ciphertext)
        except BadKubeconfig as exc:
            logger.error("gateway: %s", exc)
            raise Refusal(503, "The portal cannot reach this vcluster's API server; a platform admin must look.") from None
        return grant, upstream, root, path.decode("latin-1"), scope["query_string"].decode("latin-1")

    def _note(self, grant: Grant, info: requestinfo.RequestInfo, code: int, path: str, name: str = "") -> None:
        self.recorder.note(grant.vcluster_id, grant.user_id, grant.username, info, code, name=name, path=path)

    # HTTP -----------------------------------------------------------------------
    async def http(self, scope, receive, send):
        try:
            grant, upstream, root, path, query = await self._admit(scope)
            if _is_spdy_upgrade(scope):
                await self._refuse_spdy(grant, path, send)
                return
            body = await _read_body(receive)
        except Refusal as refusal:
            await _send_status(send, refusal)
            return
        method = scope["method"]
        info = requestinfo.parse(method, path, query)
        forward = self._forward(upstream, grant, root, method, path, query, scope["headers"], body, send)
        if requestinfo.is_streaming(info, query):
            code = await _until_disconnect(receive, forward)
        else:
            code = await forward
        self._note(grant, info, code, path, name=_created_name(info, body))

    async def _forward(self, upstream: Upstream, grant: Grant, root: bytes, method, path, query, headers, body,
                       send) -> int:
        url = URL(upstream.server + path + (f"?{query}" if query else ""), encoded=True)
        try:
            response = await upstream.session.request(
                method, url, headers=_upstream_headers(headers, grant, upstream), data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
            await _send_status(send, Refusal(503, "This vcluster's API server does not answer; try again in a minute."))
            return 503
        async with response:
            await send({"type": "http.response.start", "status": response.status,
                        "headers": _downstream_headers(response.raw_headers, root, upstream)})
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except aiohttp.ClientPayloadError:
                pass  # the API server ended the stream early; end ours too
            await send({"type": "http.response.body", "body": b""})
        return response.status

    async def _refuse_spdy(self, grant: Grant, path: str, send) -> None:
        remembered = self._refused_streams.pop((grant.user_id, grant.vcluster_id, path), None)
        if remembered and time.monotonic() - remembered[0] < REFUSAL_MEMORY_SECONDS:
            await _send(send, remembered[1], remembered[2])
        else:
            await _send_status(send, Refusal(400, SPDY_MESSAGE))

    def _remember_refused_stream(self, grant: Grant, path: str, code: int, body: bytes) -> None:
        now = time.monotonic()
        for key in [k for k, (when, _, _) in self._refused_streams.items() if now - when >= REFUSAL_MEMORY_SECONDS]:
            del self._refused_streams[key]
        self._refused_streams[(grant.user_id, grant.vcluster_id, path)] = (now, code, body)

    # WebSocket ------------------------------------------------------------------
    async def websocket(self, scope, receive, send):
        await receive()  # websocket.connect
        try:
            grant, upstream, _, path, query = await self._admit(scope)
        except Refusal as refusal:
            await _deny_websocket(scope, send, refusal.code, refusal.body())
            return
        info = requestinfo.parse("GET", path, query)
        url = URL(upstream.server + path + (f"?{query}" if query else ""), encoded=True)
        try:
            upstream_ws = await upstream.session.ws_connect(
                url, protocols=scope.get("subprotocols") or (), max_msg_size=0,
                # aiohttp makes its own handshake; the client's other headers go along
                # (the API server's watch over WebSocket wants an Origin).
                headers=_upstream_headers([(name, value) for name, value in scope["headers"]
                                           if not name.startswith(b"sec-websocket-")], grant, upstream),
            )
        except aiohttp.WSServerHandshakeError as exc:
            self._note(grant, info, exc.status, path)
            body = _status_or_none(refused_handshake.get()) or Refusal(
                exc.status, f"The vcluster's API server refused the stream ({exc.status}).").body()
            self._remember_refused_stream(grant, path, exc.status, body)
            await _deny_websocket(scope, send, exc.status, body)
            return
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
            refusal = Refusal(503, "This vcluster's API server does not answer.")
            await _deny_websocket(scope, send, refusal.code, refusal.body())
            return
        self._note(grant, info, 101, path)
        await send({"type": "websocket.accept", "subprotocol": upstream_ws.protocol})
        await _relay_websocket(receive, send, upstream_ws)


def addressed_by_token(scope) -> bool:
    """A request outside /kube/ bearing a personal vcluster token: its path is the API
    server's, its vcluster the token's. `kubectl proxy` sends such requests: it keeps
    the server URL's host and drops its path unless given --append-server-path. No
    portal page or REST call accepts these tokens, so none is taken from Django."""
    if scope["path"].startswith(PREFIX) or not (scope.get("raw_path") or b"/").startswith(b"/"):
        return False
    try:
        return _bearer_token(scope).startswith(TOKEN_PREFIX)
    except Refusal:
        return False


def _bearer_token(scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Refusal(401, "No bearer token. Use the kubeconfig you download from the portal.")


def _upstream_headers(headers, grant: Grant, upstream: Upstream) -> CIMultiDict:
    out = CIMultiDict()
    for name, value in headers:
        if name not in DROPPED_REQUEST_HEADERS:
            out.add(name.decode("latin-1"), value.decode("latin-1"))
    out.update(upstream.auth_headers)
    out["Impersonate-User"] = grant.kube_user
    for group in grant.groups:
        out.add("Impersonate-Group", group)
    return out


def _downstream_headers(raw_headers, root: bytes, upstream: Upstream) -> list[tuple[bytes, bytes]]:
    """The API server's headers for the caller: a redirect's Location (the proxy
    subresources' trailing slash) kept inside this vcluster's gateway path, `root`."""
    out = []
    for name, value in raw_headers:
        name = name.lower()
        if name in DROPPED_RESPONSE_HEADERS:
            continue
        if name == b"location":
            value = _gateway_location(value, root, upstream.server.encode())
        out.append((name, value))
    return out


def _gateway_location(location: bytes, root: bytes, server: bytes) -> bytes:
    if location.startswith(server + b"/"):
        location = location[len(server):]
    if location.startswith(b"/") and not location.startswith(b"//"):
        return root + location
    return location  # relative to the request's path, or another site's: as sent


def _is_spdy_upgrade(scope) -> bool:
    return any(name == b"upgrade" and value.lower().startswith(b"spdy/") for name, value in scope["headers"])


async def _read_body(receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "The client went away before sending the whole request.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refusal(413, f"Request bodies through the gateway are limited to {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _until_disconnect(receive, work) -> int:
    """Run `work` (a streaming response) until it ends or the client goes away."""
    task = asyncio.ensure_future(work)

    async def watch_disconnect():
        while (await receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch_disconnect())
    try:
        return await task
    except asyncio.CancelledError:
        if not watcher.done():
            raise  # we are being cancelled ourselves
        return 200  # the client closed its watch: a normal end
    finally:
        watcher.cancel()


async def _send_status(send, refusal: Refusal) -> None:
    await _send(send, refusal.code, refusal.body())


async def _send(send, code: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": code,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _deny_websocket(scope, send, code: int, body: bytes) -> None:
    """Refuse the upgrade with an HTTP response carrying the Status, as an API server would."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": code, "headers": JSON_HEADERS})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _status_or_none(body: bytes) -> bytes | None:
    """`body` if it is a Kubernetes Status, else None."""
    try:
        return body if json.loads(body).get("kind") == "Status" else None
    except (ValueError, AttributeError):
        return None


async def _relay_websocket(receive, send, upstream_ws: aiohttp.ClientWebSocketResponse) -> None:
    async def client_to_upstream():
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream_ws.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                await upstream_ws.send_str(message["text"])

    async def upstream_to_client():
        while True:
            message = await upstream_ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": message.data})
            elif message.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": message.data})
            else:
                await send({"type": "websocket.close", "code": _close_code(message)})
                return

    tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await upstream_ws.close()


def _close_code(message: aiohttp.WSMessage) -> int:
    """The close code to give the client when the upstream stream ends with `message`.

    The code of the API server's close frame, not upstream_ws.close_code: the API
    server drops the connection right after its close frame, so aiohttp's reply fails
    and it records 1006, a code no close frame may carry; sending it made the ASGI
    server drop the connection without a close frame, and kubectl fail an exec that had
    succeeded. An end without a close frame is an error (1011), not a normal close."""
    if message.type != aiohttp.WSMsgType.CLOSE:
        return 1011
    code = message.data
    return code if code in SENDABLE_CLOSE_CODES else 1000


def _created_name(info: requestinfo.RequestInfo, body: bytes) -> str:
    """The name of an object being created: it is in the body, not the path."""
    if info.verb != "create" or info.name or not body.startswith(b"{"):
        return ""
    try:
        metadata = json.loads(body).get("metadata")
    except (ValueError, AttributeError, RecursionError):  # a tenant's body: any shape, any depth
        return ""
    if not isinstance(metadata, dict):
        return ""
    name = metadata.get("name") or metadata.get("generateName") or ""
    return name if isinstance(name, str) else ""

