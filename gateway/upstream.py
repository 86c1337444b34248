"""Connections to vcluster API servers, as the portal's privileged client.

Each vcluster's stored admin kubeconfig gives its server, CA and client credentials.
One aiohttp session per vcluster keeps connections alive between requests; it is
rebuilt when the stored kubeconfig changes (a re-issued one after the API server
moved), which the gateway sees by comparing the ciphertext it gets with every grant.
"""

from __future__ import annotations

import ssl
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from cryptography.fernet import InvalidToken

from portal.fields import fernet
from syncer import kube as syncer_kube

# Many watches stay open at once; each holds one HTTP/1.1 connection.
CONNECTION_LIMIT = 10_000
CONNECT_TIMEOUT = 10


class BadKubeconfig(ValueError):
    pass


# The body of a refused WebSocket handshake (the API server's Status: pod not found,
# forbidden, …), which aiohttp drops when it raises WSServerHandshakeError. Set in the
# task that called ws_connect.
refused_handshake: ContextVar[bytes] = ContextVar("refused_handshake", default=b"")


async def _keep_refused_handshake(request: aiohttp.ClientRequest, handler) -> aiohttp.ClientResponse:
    response = await handler(request)
    if response.status != 101 and request.headers.get("Upgrade", "").lower() == "websocket":
        refused_handshake.set(await response.read())
    return response


@dataclass
class Upstream:
    server: str
    session: aiohttp.ClientSession
    auth_headers: dict[str, str]

    @classmethod
    def from_kubeconfig(cls, text: str) -> Upstream:
        cluster, user = _current(yaml.safe_load(text))
        context = ssl_context(cluster, user)
        headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=CONNECTION_LIMIT, keepalive_timeout=30),
            # Relay bodies exactly as the API server sends them (gzip included) and add
            # no headers of aiohttp's own choosing: a body sent without a Content-Type
            # would otherwise reach the API server as application/octet-stream (415).
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=None),
            middlewares=(_keep_refused_handshake,),
        )
        return cls(cluster["server"].rstrip("/"), session, headers)


def _current(doc: dict) -> tuple[dict, dict]:
    try:
        contexts = {c["name"]: c["context"] for c in doc["contexts"]}
        context = contexts[doc.get("current-context") or next(iter(contexts))]
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
    except (KeyError, TypeError, StopIteration):
        raise BadKubeconfig("the vcluster's stored kubeconfig has no usable context") from None
    return cluster, user


def ssl_context(cluster: dict, user: dict) -> ssl.SSLContext:
    """TLS for a kubeconfig's cluster and user, as the syncer's client builds it (inline
    data only: the stored kubeconfigs carry their credentials inline)."""
    return syncer_kube.ssl_context(cluster, user, Path("/nonexistent"))


class Upstreams:
    """One Upstream per vcluster, keyed by the ciphertext it was built from."""

    def __init__(self):
        self._by_vcluster: dict[int, tuple[str, Upstream]] = {}

    async def get(self, vcluster_id: int, ciphertext: str) -> Upstream:
        cached = self._by_vcluster.get(vcluster_id)
        if cached and cached[0] == ciphertext:
            return cached[1]
        try:
            upstream = Upstream.from_kubeconfig(fernet().decrypt(ciphertext.encode()).decode())
        except (InvalidToken, yaml.YAMLError, ValueError, KeyError, ssl.SSLError) as exc:
            raise BadKubeconfig(f"the stored kubeconfig of vcluster {vcluster_id} is unusable: "
                                f"{type(exc).__name__}") from None
        self._by_vcluster[vcluster_id] = (ciphertext, upstream)
        if cached:
            # Its API server address or credentials changed: streams on it are stale.
            await cached[1].session.close()
        return upstream

    async def close(self) -> None:
        for _, upstream in self._by_vcluster.values():
            await upstream.session.close()
        self._by_vcluster.clear()
