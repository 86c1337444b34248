"""A small Kubernetes REST client: dicts in, dicts out, over one urllib3 connection pool.

Not the official `kubernetes` package: importing its generated models costs about 20 MiB,
a quarter of the syncer's memory budget, and we need neither the models nor its watch
helper (the informer does list and watch itself). Kubeconfigs with a client certificate
or a bearer token (inline, or a `tokenFile` such as a projected service-account token the
kubelet rotates) are supported; exec and auth-provider plugins are not.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import urllib3
import yaml

logger = logging.getLogger(__name__)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
READYZ_TIMEOUT = 5


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    prefix: str = "/api/v1"
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", quote(namespace)]
        parts.append(self.plural)
        if name:
            parts.append(quote(name))
        if sub:
            parts.append(sub)
        return "/".join(parts)


PODS = Resource("Pod", "pods")
SERVICES = Resource("Service", "services")
ENDPOINTS = Resource("Endpoints", "endpoints")
ENDPOINTSLICES = Resource("EndpointSlice", "endpointslices", "/apis/discovery.k8s.io/v1")
CONFIGMAPS = Resource("ConfigMap", "configmaps")
SECRETS = Resource("Secret", "secrets")
PVCS = Resource("PersistentVolumeClaim", "persistentvolumeclaims")
EVENTS = Resource("Event", "events")
SERVICEACCOUNTS = Resource("ServiceAccount", "serviceaccounts")
NODES = Resource("Node", "nodes", namespaced=False)
LEASES = Resource("Lease", "leases", "/apis/coordination.k8s.io/v1")
PDBS = Resource("PodDisruptionBudget", "poddisruptionbudgets", "/apis/policy/v1")
PVS = Resource("PersistentVolume", "persistentvolumes", namespaced=False)
STORAGECLASSES = Resource("StorageClass", "storageclasses", "/apis/storage.k8s.io/v1", namespaced=False)
PRIORITYCLASSES = Resource("PriorityClass", "priorityclasses", "/apis/scheduling.k8s.io/v1", namespaced=False)
NAMESPACES = Resource("Namespace", "namespaces", namespaced=False)
NETWORKPOLICIES = Resource("NetworkPolicy", "networkpolicies", "/apis/networking.k8s.io/v1")
INGRESSES = Resource("Ingress", "ingresses", "/apis/networking.k8s.io/v1")
INGRESSCLASSES = Resource("IngressClass", "ingressclasses", "/apis/networking.k8s.io/v1", namespaced=False)
CSIDRIVERS = Resource("CSIDriver", "csidrivers", "/apis/storage.k8s.io/v1", namespaced=False)
PODCERTIFICATEREQUESTS = Resource("PodCertificateRequest", "podcertificaterequests", "/apis/certificates.k8s.io/v1")
CLUSTERTRUSTBUNDLES = Resource("ClusterTrustBundle", "clustertrustbundles", "/apis/certificates.k8s.io/v1",
                               namespaced=False)


class ApiError(Exception):
    def __init__(self, status: int, body: dict | None = None, text: str = ""):
        self.status = status
        self.body = body or {}
        self.reason = self.body.get("reason", "")
        self.message = self.body.get("message") or text or f"HTTP {status}"
        super().__init__(f"{status} {self.reason}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


class KubeconfigError(ValueError):
    pass


def _stamp(path: Path | None) -> tuple | None:
    try:
        stat = path.stat() if path else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


@dataclass(frozen=True)
class Connection:
    server: str
    ssl_context: ssl.SSLContext
    token: str | None = None
    token_file: Path | None = None  # where the token was read from, if from a file


@dataclass(frozen=True)
class _Session:
    connection: Connection
    headers: dict
    pool: urllib3.PoolManager

    @property
    def server(self) -> str:
        return self.connection.server


def load_kubeconfig(path: Path | str) -> Connection:
    """The current context of a kubeconfig file, as a server URL, TLS context and token."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text()) or {}
    context_name = doc.get("current-context")
    context = _named(doc, "contexts", context_name, path)["context"]
    cluster = _named(doc, "clusters", context["cluster"], path)["cluster"]
    user = _named(doc, "users", context["user"], path).get("user") or {}
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(f"{path}: exec and auth-provider credentials are not supported")
    token, token_file = user.get("token"), None
    if not token and user.get("tokenFile"):
        token_file = path.parent / user["tokenFile"]
        token = token_file.read_text().strip()
    return Connection(cluster["server"].rstrip("/"), ssl_context(cluster, user, path.parent), token, token_file)


def _named(doc: dict, section: str, name: str | None, path: Path) -> dict:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise KubeconfigError(f"{path}: no {section[:-1]} named {name!r}")


def ssl_context(cluster: dict, user: dict, base: Path) -> ssl.SSLContext:
    """TLS for a kubeconfig's cluster and user entries; file paths in them are relative
    to `base`. Also the gateway's, for its connections to vcluster API servers."""
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        context = ssl.create_default_context(cadata=_b64(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        context = ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
    else:
        context = ssl.create_default_context()
    cert = _pem(user, "client-certificate", base)
    key = _pem(user, "client-key", base)
    if cert and key:
        _load_cert_chain(context, cert, key)
    return context


def _pem(user: dict, field: str, base: Path) -> bytes | None:
    if user.get(f"{field}-data"):
        return _b64(user[f"{field}-data"])
    if user.get(field):
        return (base / user[field]).read_bytes()
    return None


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl only loads client certificates from files: write them to a private temporary
    # directory for the duration of the call.
    with tempfile.TemporaryDirectory(prefix="syncer-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for file_path, content in ((cert_path, cert), (key_path, key)):
            fd = os.open(file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
        context.load_cert_chain(cert_path, key_path)


class Client:
    """Thread-safe: urllib3 pools connections per thread as needed.

    Made from a kubeconfig file, it reads the file again when a request is refused as
    unauthorized or cannot connect and the file, or the token file it names, has changed
    since: rotated credentials (a projected token the kubelet renews) or a server that
    moved are picked up without a restart."""

    def __init__(self, connection: Connection, *, pool_size: int = 32, timeout: float = 30,
                 source: Path | None = None):
        self._pool_size, self._timeout = pool_size, timeout
        self._source = source
        self._session = self._open(connection)
        self._stamps_read = self._stamps()

    @classmethod
    def from_kubeconfig(cls, path: Path | str, **kwargs) -> Client:
        return cls(load_kubeconfig(path), source=Path(path), **kwargs)

    @property
    def server(self) -> str:
        return self._session.server

    @property
    def connection(self) -> Connection:
        """Server, TLS and token, for a caller that speaks HTTP itself (syncer.kubelet)."""
        self.reload_if_changed()
        return self._session.connection

    def _open(self, connection: Connection) -> _Session:
        headers = {"Accept": JSON, "User-Agent": "vcportal-syncer"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        pool = urllib3.PoolManager(num_pools=2, maxsize=self._pool_size, ssl_context=connection.ssl_context,
                                   retries=False)
        return _Session(connection, headers, pool)

    def _stamps(self) -> tuple | None:
        """The stamps of the kubeconfig file and of the token file it names; None without
        a file, or while one is missing (being rewritten)."""
        if self._source is None:
            return None
        files = (self._source, self._session.connection.token_file)
        stamps = tuple(_stamp(path) for path in files if path is not None)
        return None if None in stamps else stamps

    def reload_if_changed(self) -> bool:
        stamps = self._stamps()  # before reading: a change while reading is seen next time
        if stamps is None or stamps == self._stamps_read:
            return False
        self._session, self._stamps_read = self._open(load_kubeconfig(self._source)), stamps
        logger.info("%s or its token file changed; using them from now on", self._source)
        return True

    def unready(self) -> str | None:
        """Why the API server does not serve yet (no connection, or its /readyz fails);
        None once it does. A refusal (401, 403) is an answer: requests will say more."""
        try:
            response = self._send("GET", "/readyz", None, timeout=READYZ_TIMEOUT)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return str(exc) or type(exc).__name__
        return f"/readyz answers {response.status}" if response.status >= 500 else None

    def _send(self, method: str, path: str, params: dict | None, extra_headers: dict | None = None, **kwargs):
        query = f"?{urlencode(params)}" if params else ""
        for first in (True, False):
            session = self._session
            headers = {**session.headers, **(extra_headers or {})}
            started = time.monotonic()
            try:
                response = session.pool.request(method, session.server + path + query, headers=headers, **kwargs)
            except urllib3.exceptions.HTTPError:
                if first and self.reload_if_changed():
                    continue
                raise
            if response.status == 401 and first and self.reload_if_changed():
                response.release_conn()
                continue
            logger.debug("%s %s → %s in %.0f ms", method, path, response.status, (time.monotonic() - started) * 1000)
            return response

    def request(self, method: str, path: str, *, params: dict | None = None, body=None,
                content_type: str = JSON) -> dict:
        data, headers = None, {}
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        return _decode(self._send(method, path, params, headers, body=data, timeout=self._timeout))

    # Verbs ---------------------------------------------------------------
    def get(self, resource: Resource, namespace: str | None, name: str) -> dict:
        return self.request("GET", resource.path(namespace, name))

    def get_or_none(self, resource: Resource, namespace: str | None, name: str) -> dict | None:
        try:
            return self.get(resource, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None) -> dict:
        params = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", resource.path(namespace), params=params)

    def create(self, resource: Resource, namespace: str | None, obj: dict, *, name: str | None = None,
               sub: str | None = None) -> dict:
        return self.request("POST", resource.path(namespace, name, sub), body=obj)

    def patch(self, resource: Resource, namespace: str | None, name: str, patch: dict, *,
              strategic: bool = False, sub: str | None = None) -> dict:
        kind = STRATEGIC_PATCH if strategic else MERGE_PATCH
        return self.request("PATCH", resource.path(namespace, name, sub), body=patch, content_type=kind)

    def apply(self, resource: Resource, obj: dict, field_manager: str) -> dict:
        """Server-side apply of `obj`, taking over its fields from whoever changed them."""
        meta = obj["metadata"]
        return self.request("PATCH", resource.path(meta.get("namespace"), meta["name"]), body=obj,
                            params={"fieldManager": field_manager, "force": "true"},
                            content_type="application/apply-patch+yaml")

    def delete(self, resource: Resource, namespace: str | None, name: str, *,
               grace_seconds: int | None = None, uid: str | None = None) -> bool:
        """False if it was already gone. With `uid`, only that incarnation is deleted."""
        options: dict = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource.path(namespace, name), body=options)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def watch(self, resource: Resource, namespace: str | None, resource_version: str, *,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Watch:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        response = self._send("GET", resource.path(namespace), params, preload_content=False,
                              timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 30))
        if response.status != 200:
            try:
                _decode(response)
            finally:
                response.release_conn()
        return Watch(response)


class Watch:
    """The events of one watch request; `close()` from another thread ends the iteration."""

    def __init__(self, response):
        self._response = response

    def __iter__(self) -> Iterator[dict]:
        for line in self._response:
            line = line.strip()
            if line:
                yield json.loads(line)

    def close(self) -> None:
        response = self._response
        if response.connection is not None:  # still streaming: interrupt the blocking read
            try:
                response.shutdown()
            except (ValueError, RuntimeError, OSError):  # released or closed meanwhile
                pass
            response.close()
        response.release_conn()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _decode(response) -> dict:
    text = response.data
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = None
    if response.status >= 400:
        raise ApiError(response.status, body if isinstance(body, dict) else None,
                       text.decode(errors="replace")[:500])
    return body or {}
