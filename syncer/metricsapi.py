"""The vcluster's metrics.k8s.io API, served by the syncer: `kubectl top` and
HorizontalPodAutoscalers inside a vcluster.

The vcluster's API server aggregates it: the APIService `v1beta1.metrics.k8s.io` names
the Service `kube-system/vcportal-metrics`, an ExternalName of the syncer's address
(beside the API server in both runtimes), which the services kind never copies to the
host. The syncer registers them when it starts and at each resync (`register`), so a
tenant who deletes them gets them back. The API server calls here over TLS: the serving
certificate names `vcportal-metrics.kube-system.svc` and comes from the vcluster's CA
(the APIService's caBundle); the client must present a certificate from the front-proxy
CA, which signs the API server's and nothing else (controlplane.pki.front_proxy_files
keeps no key), and only then is its X-Remote-User, -Group and -Extra-* taken for the
caller. Every read is authorized in the vcluster with a SubjectAccessReview, as
metrics-server does: RBAC inside decides who sees what.

The figures are the host's, read from the host's metrics.k8s.io (its metrics-server) for
the syncer's own host namespace only, with one Role rule (METRICS_RULE):
- a pod's are its host copy's, containers by name; a pod without figures yet (just
  started, or its host copy not this syncer's) is left out, as metrics-server leaves out
  a pod it has not scraped;
- a node's are the sum of the tenant's own pods on that node, never the node's total:
  that would tell one tenant how busy the others are.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
from collections.abc import Callable, Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from . import names
from .kube import NODES, PODS, SERVICES, ApiError, Client, Resource
from .kubelet import NotServed, synced_host_pod
from .recorder import now_iso
from .tlsserver import TLSServer, handshake

if TYPE_CHECKING:
    from .controller import SyncContext

logger = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"
SERVICE_NAMESPACE, SERVICE_NAME = "kube-system", "vcportal-metrics"
SERVICE_HOST = f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc"  # what the serving certificate must name
# What the syncer's host Role needs for this (syncer.rbac.host_rules).
METRICS_RULE = {"apiGroups": [GROUP], "resources": ["pods"], "verbs": ["get", "list"]}

APISERVICES = Resource("APIService", "apiservices", "/apis/apiregistration.k8s.io/v1", namespaced=False)
HOST_POD_METRICS = Resource("PodMetrics", "pods", PREFIX)
CLUSTERROLES = Resource("ClusterRole", "clusterroles", "/apis/rbac.authorization.k8s.io/v1", namespaced=False)
READER_ROLE = "vcportal:metrics-reader"
REVIEWS = Resource("SubjectAccessReview", "subjectaccessreviews", "/apis/authorization.k8s.io/v1", namespaced=False)

RESOURCES = [
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
]
# The paths served: pods of all namespaces or of one, one pod, nodes, one node.
RESOURCE_PATH = re.compile(
    rf"{re.escape(PREFIX)}/(?:namespaces/(?P<ns>[^/]+)/)?(?P<res>pods|nodes)(?:/(?P<name>[^/]+))?")
SELECTORS = ("labelSelector", "fieldSelector")
IDLE_TIMEOUT = 300  # seconds a kept-alive connection may wait for its next request
MAX_REVIEW = 3 * 1024 * 1024  # bytes: the API server's own limit on a request body


# Registration ------------------------------------------------------------------
def registration(address: tuple[str, int], ca_pem: bytes) -> list[tuple[Resource, dict]]:
    """The Service and APIService that send the vcluster's metrics.k8s.io here, and the
    ClusterRole that adds reading metrics to the `view`, `edit` and `admin` roles (as
    metrics-server's manifests do)."""
    host, port = address
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": host, "ports": [{"name": "https", "port": port}]},
    }
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": f"{VERSION}.{GROUP}"},
        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": port},
                 "caBundle": base64.b64encode(ca_pem).decode()},
    }
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": READER_ROLE, "labels": {f"rbac.authorization.k8s.io/aggregate-to-{role}": "true"
                                                     for role in ("view", "edit", "admin")}},
        "rules": [{"apiGroups": [GROUP], "resources": ["pods", "nodes"], "verbs": ["get", "list"]}],
    }
    return [(SERVICES, service), (APISERVICES, apiservice), (CLUSTERROLES, reader)]


def register(virtual: Client, address: tuple[str, int], ca_pem: bytes) -> None:
    """Apply the registration (server-side apply: a start puts back what a tenant changed)."""
    for resource, obj in registration(address, ca_pem):
        virtual.apply(resource, obj, names.FIELD_MANAGER)


# Figures -------------------------------------------------------------------------
UNITS = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
         "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
         "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40)}
QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)(n|u|m|k|M|G|T|Ki|Mi|Gi|Ti|)\Z")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("250m", "1234567n", "64Mi") as a number of units."""
    match = QUANTITY.match(text or "")
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(match[1]) * UNITS[match[2]]


def usage_sum(usages: Iterable[dict]) -> dict[str, str]:
    """Summed CPU (nanocores, as metrics-server writes it) and memory (KiB)."""
    cpu = memory = Decimal(0)
    for usage in usages:
        cpu += parse_quantity(usage.get("cpu", "0"))
        memory += parse_quantity(usage.get("memory", "0"))
    return {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(memory / 1024)}Ki"}


def pod_metrics(vpods: Iterable[dict], host_figures: dict[str, dict], host_name_of: Callable[[dict], str | None],
                now: str) -> list[dict]:
    """A PodMetrics for each virtual pod whose host copy has figures, named as in the vcluster."""
    items = []
    for vpod in vpods:
        host_name = host_name_of(vpod)
        figures = host_figures.get(host_name) if host_name else None
        if figures is None:
            continue
        meta = vpod["metadata"]
        items.append({
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "creationTimestamp": now,
                         "labels": meta.get("labels") or {}},
            "timestamp": figures["timestamp"], "window": figures["window"],
            "containers": [{"name": c["name"], "usage": c["usage"]} for c in figures.get("containers") or []],
        })
    return items


def node_metrics(vnodes: Iterable[dict], pods: list[dict], vpods: Iterable[dict], now: str) -> list[dict]:
    """A NodeMetrics for each virtual node: the sum of the tenant's pods (`pods`, PodMetrics
    named as in the vcluster; `vpods` says where they run) on it."""
    node_of = {(p["metadata"]["namespace"], p["metadata"]["name"]): (p.get("spec") or {}).get("nodeName")
               for p in vpods}
    on_node: dict[str, list[dict]] = {}
    for item in pods:
        node = node_of.get((item["metadata"]["namespace"], item["metadata"]["name"]))
        if node:
            on_node.setdefault(node, []).append(item)
    items = []
    for vnode in vnodes:
        meta, mine = vnode["metadata"], on_node.get(vnode["metadata"]["name"], [])
        items.append({
            "metadata": {"name": meta["name"], "creationTimestamp": now, "labels": meta.get("labels") or {}},
            "timestamp": max((p["timestamp"] for p in mine), default=now),
            "window": mine[0]["window"] if mine else "0s",
            "usage": usage_sum(c["usage"] for p in mine for c in p["containers"]),
        })
    return items


# Requests ----------------------------------------------------------------------------
class MetricsApi:
    """What the server answers, given the syncer's clients and caches."""

    def __init__(self, ctx: SyncContext):
        self.ctx = ctx

    def discovery(self, path: str) -> dict | None:
        if path == PREFIX:
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                    "resources": RESOURCES}
        if path == f"/apis/{GROUP}":
            version = {"groupVersion": GROUP_VERSION, "version": VERSION}
            return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [version],
                    "preferredVersion": version}
        return None

    def authorize(self, user: dict, verb: str, resource: str, namespace: str | None, name: str | None) -> None:
        attributes = {"group": GROUP, "version": VERSION, "resource": resource, "verb": verb,
                      "namespace": namespace or "", "name": name or ""}
        review = self.ctx.virtual.create(REVIEWS, None, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {**user, "resourceAttributes": attributes}})
        if not (review.get("status") or {}).get("allowed"):
            scope = f' in the namespace "{namespace}"' if namespace else ""
            raise NotServed(403, f'{resource}.{GROUP} is forbidden: User "{user["user"]}" cannot {verb} resource '
                                 f'"{resource}" in API group "{GROUP}"{scope}')

    def read(self, resource: str, namespace: str | None, name: str | None, query: dict[str, str]) -> dict:
        now = now_iso()
        pods = resource == "pods"
        vpods = self._virtual(PODS, namespace if pods else None, name if pods else None, query if pods else {})
        figures = pod_metrics(vpods, self._host_figures(), self._host_name, now)
        if resource == "nodes":
            vnodes = self._virtual(NODES, None, name, query)
            items = node_metrics(vnodes, figures, vpods, now)
            kind = "NodeMetrics"
        else:
            items, kind = figures, "PodMetrics"
        if name is None:
            return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
        if not items:
            shown = f"{namespace}/{name}" if namespace else name
            raise NotServed(404, f'{kind.lower()}.{GROUP} "{shown}" not found')
        return {"kind": kind, "apiVersion": GROUP_VERSION, **items[0]}

    def _virtual(self, resource: Resource, namespace: str | None, name: str | None, query: dict) -> list[dict]:
        """From the vcluster's API, which applies the caller's selectors as it would its own."""
        try:
            if name is not None:
                return [self.ctx.virtual.get(resource, namespace, name)]
            params = {k: v for k, v in query.items() if k in SELECTORS}
            return self.ctx.virtual.request("GET", resource.path(namespace), params=params or None)["items"] or []
        except ApiError as exc:
            if exc.not_found:
                return []
            if exc.status == 400:
                raise NotServed(400, (exc.body or {}).get("message") or "bad request") from None
            raise

    def _host_figures(self) -> dict[str, dict]:
        """The host's PodMetrics of the syncer's namespace, by pod name."""
        try:
            listed = self.ctx.host.request("GET", HOST_POD_METRICS.path(self.ctx.target.namespace))
        except ApiError as exc:
            if exc.status in (404, 503):
                raise NotServed(503, "the host cluster serves no pod metrics (metrics.k8s.io): "
                                     "it runs no metrics-server, or it is not ready yet") from None
            if exc.status == 403:
                raise NotServed(503, "the syncer may not read pod metrics on the host: its host Role "
                                     "predates metrics; provisioning grants it on the next reconcile") from None
            raise
        return {item["metadata"]["name"]: item for item in listed.get("items") or []}

    def _host_name(self, vpod: dict) -> str | None:
        """The host copy's name if this syncer made it for this very pod (its uid)."""
        meta = vpod["metadata"]
        try:
            return synced_host_pod(self.ctx, meta["namespace"], meta["name"], meta["uid"])[1]
        except NotServed:
            return None


def caller(headers) -> dict | None:
    """The SubjectAccessReview spec of the front proxy's caller; None without one."""
    name = headers.get("X-Remote-User")
    if not name:
        return None
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith("x-remote-extra-"):
            extra.setdefault(unquote(key[len("x-remote-extra-"):]).lower(), []).append(value)
    return {"user": name, "groups": headers.get_all("X-Remote-Group") or [], "extra": extra}


# Server ------------------------------------------------------------------------------
class MetricsServer(TLSServer):
    """The metrics API, and on the same listener the syncer's admission webhooks
    (`webhooks`: path → the AdmissionReview answering a review; syncer.admission)."""

    name = "metrics API"

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, api: MetricsApi,
                 webhooks: dict[str, Callable[[dict], dict]] | None = None):
        self.api = api
        self.webhooks = webhooks or {}
        super().__init__(address, context, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"

    def handle(self):
        if not handshake(self):
            return
        self.request.settimeout(IDLE_TIMEOUT)  # the API server keeps connections open between calls
        super().handle()

    def do_GET(self):
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        try:
            if path in ("/healthz", "/livez", "/readyz"):
                self._send(200, b"ok", "text/plain")
                return
            found = self.server.api.discovery(path)
            if found is None:
                found = self._resource(path, {k: v[-1] for k, v in parse_qs(url.query).items()})
            self._json(200, found)
        except NotServed as exc:
            self._json(exc.status, _status(exc.status, str(exc)))
        except Exception:  # an answer, not a dropped connection: the API server says 503 either way
            logger.exception("metrics API: %s failed", self.path)
            self._json(500, _status(500, "the syncer failed to read metrics; see its log"))

    def do_POST(self):
        webhook = self.server.webhooks.get(urlsplit(self.path).path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if webhook is None:
                raise NotServed(404, f"the server could not find the requested resource ({self.path})")
            if not 0 < length <= MAX_REVIEW:
                raise NotServed(400, "an AdmissionReview of at most 3 MiB is expected")
            self._json(200, webhook(json.loads(self.rfile.read(length))))
        except NotServed as exc:
            self.close_connection = True  # the body may be unread
            self._json(exc.status, _status(exc.status, str(exc)))
        except Exception:  # the API server applies the webhook's failure policy
            logger.exception("admission webhook %s failed", self.path)
            self._json(500, _status(500, "the syncer failed to review the request; see its log"))

    def _resource(self, path: str, query: dict[str, str]) -> dict:
        match = RESOURCE_PATH.fullmatch(path)
        if not match or (match["res"] == "nodes" and match["ns"]):
            raise NotServed(404, f"the server could not find the requested resource ({path})")
        if query.get("watch") in ("true", "1"):
            raise NotServed(405, "metrics cannot be watched")
        user = caller(self.headers)
        if user is None:
            raise NotServed(401, "Unauthorized")
        namespace, name = (unquote(match["ns"]) if match["ns"] else None), (unquote(match["name"]) if match["name"]
                                                                          else None)
        self.server.api.authorize(user, "get" if name else "list", match["res"], namespace, name)
        return self.server.api.read(match["res"], namespace, name, query)

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           500: "InternalError", 503: "ServiceUnavailable"}


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": REASONS.get(code, ""), "code": code}

