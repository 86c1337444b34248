"""The one place provisioning talks to a host cluster's API.

Objects are written with server-side apply under our field manager and with
force, so applying the desired state both creates what is missing and puts back
what someone changed by hand; `apply` says whether it had to. Force would also take
over an object of the same name that is not ours, so `apply` first reads the object
and refuses one without the ownership marks it is about to write.
"""

from __future__ import annotations

import time

import urllib3
import yaml
from kubernetes import config
# Named imports load the client's models now (about 2 s, once per process) rather
# than inside the first provisioning step that needs them.
from kubernetes.client import ApiClient, Configuration, CoreV1Api, VersionApi
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from portal.kubeapi import REQUEST_TIMEOUT, describe

from .manifests import ownership_conflict

FIELD_MANAGER = "vcportal"


class HostUnreachable(RuntimeError):
    pass


VERSION_TIMEOUT = 5


def _network_failure(exc: BaseException) -> str:
    """What went wrong on the way to a server, in a few words."""
    reason = getattr(exc, "reason", None) or exc  # MaxRetryError wraps the last attempt's error
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return f"no answer within {VERSION_TIMEOUT} s"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return "the TLS handshake failed"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "the connection was refused or could not be made"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "the connection closed without an HTTP answer"
    return describe(reason)


class NotOurs(RuntimeError):
    """An object provisioning would write carries another owner's marks, or none."""


def _content(obj) -> dict:
    """What an apply can change: not the status, nor the bookkeeping that moves when a
    controller writes the status between our read and our apply (a quota's usage)."""
    content = obj.to_dict()
    content.pop("status", None)
    for key in ("resourceVersion", "managedFields"):
        content["metadata"].pop(key, None)
    return content


class HostKube:
    def __init__(self, kubeconfig: str | None, *, retries: int | None = None):
        """kubeconfig None: the portal's own ServiceAccount, as a pod has it (its token is
        read again as the kubelet rotates it). retries: how often a request that found no
        server is tried again (None: urllib3's 3). A registration's check tries once: a
        port that accepts and never answers would otherwise hold the request for four
        timeouts."""
        configuration = Configuration()
        if kubeconfig is None:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration,
                                              persist_config=False)
        configuration.retries = retries
        self.address = configuration.host
        self.api = ApiClient(configuration)
        self._dynamic: DynamicClient | None = None

    @classmethod
    def of(cls, host, *, retries: int | None = None) -> HostKube:
        """The client for a registered HostCluster, with its kubeconfig or in-cluster."""
        return cls(None if host.in_cluster else host.kubeconfig, retries=retries)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.api)

    def version(self) -> str:
        """The API server's version; HostUnreachable says why there is none, in a line
        that names the server and the failure, never what else answered there."""
        try:
            return VersionApi(self.api).get_code(_request_timeout=VERSION_TIMEOUT).git_version
        except ApiException as exc:
            raise HostUnreachable(f"{self.address} answered HTTP {exc.status} {exc.reason or ''} to GET /version; "
                                  "is it a Kubernetes API server?") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise HostUnreachable(f"no Kubernetes API server answered at {self.address}: {_network_failure(exc)}") \
                from None

    def _resource(self, manifest: dict):
        return self.dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])

    def apply(self, manifest: dict) -> bool:
        """Server-side apply `manifest`; True if that created or changed the object.
        Raises NotOurs, changing nothing, if the object exists without our marks."""
        resource = self._resource(manifest)
        meta = manifest["metadata"]
        current = self._get(resource, meta["name"], meta.get("namespace"))
        if current is not None:
            _refuse_unless_ours(manifest["kind"], meta, current.metadata.labels)
        after = self.dynamic.server_side_apply(
            resource, body=manifest, namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER, force_conflicts=True, _request_timeout=REQUEST_TIMEOUT,
        )
        return current is None or _content(after) != _content(current)

    def ensure(self, manifest: dict) -> bool:
        """Create `manifest` unless an object of its name exists, whoever made it (objects
        shared by every vcluster and by other portals on the host); True if created."""
        meta = manifest["metadata"]
        if self._get(self._resource(manifest), meta["name"], meta.get("namespace")) is not None:
            return False
        return self.apply(manifest)

    def _get(self, resource, name: str, namespace: str | None):
        try:
            return resource.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
        except NotFoundError:
            return None

    def labels_of(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The object's labels, or None if there is no such object."""
        resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        current = self._get(resource, name, namespace)
        return None if current is None else dict(current.metadata.labels or {})

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        return self.labels_of(api_version, kind, name, namespace) is not None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete if present; True if there was something to delete."""
        resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            resource.delete(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
        except NotFoundError:
            return False
        return True

    def delete_labelled(self, api_version: str, kind: str, namespace: str, selector: str) -> list[str]:
        """Delete every object of `kind` in `namespace` matching `selector`; their names."""
        resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            items = resource.get(namespace=namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
        except NotFoundError:
            return []
        for item in items:
            try:
                resource.delete(name=item.metadata.name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
            except NotFoundError:
                pass
        return sorted(item.metadata.name for item in items)

    def delete_pods_now(self, namespace: str) -> int:
        """Delete every pod in `namespace` without a grace period: the namespace is going
        away and its workloads' control plane is already stopped. Without this the
        namespace controller waits out each pod's grace period before it finishes."""
        pods = self.core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT).items
        if pods:
            self.core.delete_collection_namespaced_pod(
                namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT
            )
        return len(pods)

    def wait_namespace_gone(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.exists("v1", "Namespace", name):
                return True
            time.sleep(0.2)
        return False

    def server(self) -> tuple[str, str]:
        """The API server URL and its CA bundle (PEM), as the kubeconfig gives them."""
        conf = self.api.configuration
        with open(conf.ssl_ca_cert) as fh:
            return conf.host, fh.read()

    def find_labelled(self, selector: str) -> list[str]:
        """Every object, of every listable kind and in every namespace, that matches
        `selector`, as "Kind namespace/name": what teardown checks is gone."""
        return sorted(self.labelled(selector))

    def labelled(self, selector: str) -> dict[str, str]:
        """find_labelled's objects, each with its uid."""
        found = {}
        for resource in self.dynamic.resources.search():
            if "list" not in (resource.verbs or []) or "/" in resource.name or resource.kind.endswith("List"):
                continue
            try:
                items = resource.get(label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
            except ApiException:
                continue
            for item in items:
                ns = item.metadata.namespace
                found[f"{resource.kind} {ns + '/' if ns else ''}{item.metadata.name}"] = item.metadata.uid
        return found


def _refuse_unless_ours(kind: str, meta: dict, labels) -> None:
    conflict = ownership_conflict(dict(labels or {}), meta.get("labels") or {})
    if conflict:
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        raise NotOurs(f"{kind} {where}{meta['name']} already exists and {conflict}; refusing to take it over")
