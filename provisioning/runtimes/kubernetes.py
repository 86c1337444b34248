"""The `kubernetes` runtime: each vcluster's control plane and syncer run as one pod of a
StatefulSet in its host namespace (the objects are kubeobjects', built from controlplane).

The worker only talks to the host's API and, to check readiness, to the vcluster's API
server where tenants reach it; nothing of a vcluster runs on the worker, so workers
are interchangeable and the host cluster is what scales.

What must outlive pods and Services (State: the vcluster's CA and service-account keys,
the Service's address and node port) goes to the StateStore the pipeline hands it,
which the portal keeps encrypted. So a deleted Secret comes back byte for byte, a
deleted Service comes back on the same address and port, and kubeconfigs issued before
stay valid. kine's data lives on the PVC: a new pod finds the cluster as it was.
"""

from __future__ import annotations

import http.client
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from urllib.parse import urlsplit

from django.conf import settings
from kubernetes.client import DiscoveryV1Api
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from controlplane import images
from portal.kubeapi import read_or_none
from controlplane.components import SERVICE_CIDR
from syncer.policy import TenantPolicy

from ..hostkube import HostKube
from ..manifests import INSTALLATION_LABEL, ownership_conflict, selector
from . import kubeobjects as cp
from .base import RuntimeFailure, RuntimeNotReady, StateStore, VClusterRef, hosts_image, syncer_name

POLL = 0.25
IMAGE_VERSION = re.compile(r"v?(\d+\.\d+\.\d+)(?:$|[-+_])")


@dataclass
class State:
    """What the runtime keeps of one vcluster between calls and across pods."""

    keys: dict[str, str] = field(default_factory=dict)  # file name -> PEM or YAML (kubeobjects.new_keys)
    names: list[str] = field(default_factory=list)  # what the serving certificate names
    address: str = ""  # where tenants reach the API server (node, load balancer or ingress host)
    service_ip: str = ""
    node_port: int | None = None
    lb_address: str = ""
    service_cidr: str = ""  # the host's Service range, the vcluster's too
    hash: str = ""  # of the mounted files, as on the pod template (kubeobjects.config_hash)

    @classmethod
    def from_dict(cls, data: dict) -> State:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(self, host, store: StateStore):
        """`host`: the HostCluster (its kubeconfig, access, image and tenant policy)."""
        self.host, self.store = host, store
        self.kube = HostKube.of(host)
        self.access = cp.Access(host.access, host.access_address)

    def _load(self) -> State:
        return State.from_dict(self.store.load())

    def _save(self, state: State) -> None:
        self.store.save(asdict(state))

    def image(self) -> str:
        try:
            return self.host.runtime_image or settings.VCPORTAL_RUNTIME_IMAGE or images.reference("vcluster-runtime")
        except images.ImagesMissing as exc:
            raise RuntimeFailure(f"{exc} Or set the host cluster's runtime image.") from None

    def _check_version(self, vc: VClusterRef) -> None:
        """The image runs one Kubernetes version; its tag says which when it starts with
        one (`make images`' 1.37.2-<hash>, or v1.37.2). Another tag is taken on trust."""
        image = self.image()
        tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
        match = IMAGE_VERSION.match(tag)
        if match and f"v{match[1]}" != vc.kubernetes_version:
            raise RuntimeFailure(f"Kubernetes {vc.kubernetes_version} is not available on host cluster {self.host}: "
                                 f"its runtime image {image} runs v{match[1]}.")

    # ControlPlaneRuntime -----------------------------------------------------
    def quota_share(self) -> dict[str, int]:
        return cp.share(self.access)

    def ensure_control_plane(self, vc: VClusterRef, policy: TenantPolicy) -> list[str]:
        self._check_version(vc)
        state = self._load()
        changed = self._ensure_service(vc, state)
        address = self._access_address(vc, state)
        state.service_cidr = state.service_cidr or self._host_service_cidr()
        names = cp.server_names(vc.host_namespace, state.service_ip, address, state.service_cidr)
        if not state.keys:
            state.keys = cp.new_keys(vc.name, names)
        elif state.names != names:
            state.keys = cp.reissue_api_certificate(state.keys, names)
        state.keys = cp.complete_keys(state.keys, vc.name)
        state.names, state.address = names, address
        self._save(state)  # before any object names these keys
        # The policy ensure_syncer applies: any other (the host's before its team is named
        # in it) would roll the pod back and forth at every repair.
        changed += self._apply_pod(vc, state, policy)
        self._wait(vc, lambda: self._readyz(state) == 200, "the API server does not answer /readyz")
        return changed

    def server(self, vc: VClusterRef) -> str:
        state = self._load()
        return self._server(state) if state.address else ""

    def _server(self, state: State) -> str:
        return cp.server_url(cp.Access(self.access.mode, state.address), state.node_port)

    def admin_kubeconfig(self, vc: VClusterRef) -> str:
        state = self._load()
        return cp.admin_kubeconfig(state.keys, vc.name, self._server(state))

    def pod_api_endpoint(self, vc: VClusterRef) -> tuple[str, int]:
        return self._load().service_ip, cp.SERVICE_PORT

    def ensure_syncer(self, vc: VClusterRef, host_kubeconfig: Callable[[], str], policy: TenantPolicy) -> list[str]:
        """The syncer runs in the control plane's pod with in-cluster credentials
        (`host_kubeconfig` is not needed); this keeps its config current, which rolls
        the pod when it changes (a new tenant policy)."""
        return self._apply_pod(vc, self._load(), policy)

    def syncer_running(self, vc: VClusterRef) -> bool:
        """Ready once the pod made from the current config has a ready syncer and API server."""
        pod = self._pod(vc)
        if pod is None or (pod.metadata.annotations or {}).get(cp.CONFIG_HASH) != self._load().hash:
            return False
        ready = {s.name for s in _statuses(pod) if s.ready}
        return {"syncer", "kube-apiserver"} <= ready

    def destroy(self, vc: VClusterRef) -> list[str]:
        """Delete the pod first (nothing may hold the claim), then every object, then
        wait until the claim's volume is gone: the provisioner removes its data."""
        ns, removed = vc.host_namespace, []
        claims = self._claims(vc)
        if self._delete_ours(vc, "apps/v1", "StatefulSet", cp.STATEFULSET):
            removed.append(f"StatefulSet {ns}/{cp.STATEFULSET}")
        for pod in self._pods(vc):
            try:
                self.kube.core.delete_namespaced_pod(pod, ns, grace_period_seconds=0, _request_timeout=10)
            except ApiException as exc:
                if exc.status != 404:  # gone meanwhile: teardown deleted the namespace's pods first
                    raise
                continue
            removed.append(f"Pod {ns}/{pod}")
        for api_version, kind, name in (
            ("v1", "Service", cp.SERVICE), ("networking.k8s.io/v1", "Ingress", cp.SERVICE),
            ("networking.k8s.io/v1", "NetworkPolicy", cp.POLICY),
            ("v1", "Secret", cp.PKI_SECRET), ("v1", "Secret", cp.SYNCER_SECRET),
        ):
            if self._delete_ours(vc, api_version, kind, name):
                removed.append(f"{kind} {ns}/{name}")
        for claim in claims:  # kept by the StatefulSet (it retains claims), so a deleted one comes back with its data
            self._delete_ours(vc, "v1", "PersistentVolumeClaim", claim)
        kept = self._wait_volumes_gone(vc, claims)
        removed += [f"PersistentVolumeClaim {ns}/{claim}" for claim in claims]
        removed += [f"PersistentVolume {pv} and its volume" for pv in claims.values() if pv and pv not in kept]
        removed += [f"nothing: PersistentVolume {pv} is kept, its reclaim policy is Retain" for pv in kept]
        if self.store.clear():
            removed.append("the control plane's keys stored by the portal")
        return removed

    # Objects ---------------------------------------------------------------
    def _apply(self, manifest: dict) -> list[str]:
        """Apply one object; what changed, as the pipeline records it."""
        meta = manifest["metadata"]
        return [f"{manifest['kind']} {meta['namespace']}/{meta['name']}"] if self.kube.apply(manifest) else []

    def _ensure_service(self, vc: VClusterRef, state: State) -> list[str]:
        ns = vc.host_namespace
        manifest = cp.service(ns, vc.labels, self.access, state.service_ip or None, state.node_port)
        try:
            changed = self._apply(manifest)
        except ApiException as exc:
            if exc.status == 403 and "exceeded quota" in str(exc.body):
                # The quota makes room for exactly this Service. A create aborted midway
                # (a worker killed during it) charges the quota without making the
                # Service, until the host recounts (its quota resync, 5 minutes by default).
                raise RuntimeNotReady(f"the host refused Service {ns}/{cp.SERVICE} as over the namespace's quota, "
                                      "which counts a node port no Service holds (an aborted create) until the "
                                      "host recounts it") from None
            if exc.status != 422 or not state.service_ip:
                raise
            # The old address or port was taken meanwhile: take new ones, and reissue.
            changed = self._apply(cp.service(ns, vc.labels, self.access, None, None))
        service = self.kube.core.read_namespaced_service(cp.SERVICE, ns, _request_timeout=10)
        state.service_ip = service.spec.cluster_ip
        state.node_port = service.spec.ports[0].node_port
        state.lb_address = _load_balancer_address(service)
        return changed

    def _access_address(self, vc: VClusterRef, state: State) -> str:
        if self.access.mode == "clusterip":
            return f"{cp.SERVICE}.{vc.host_namespace}.svc"
        if self.access.mode == "ingress":
            return cp.ingress_host(vc.host_namespace, self.access.address)
        if self.access.mode == "loadbalancer":
            if not state.lb_address:
                raise RuntimeNotReady(f"Service {vc.host_namespace}/{cp.SERVICE} has no load balancer address yet")
            return state.lb_address
        return self.access.address

    def _apply_pod(self, vc: VClusterRef, state: State, policy: TenantPolicy) -> list[str]:
        """Apply the Secrets, policy, ingress and StatefulSet for `state`; what changed."""
        ns, labels = vc.host_namespace, vc.labels
        syncer_files = cp.syncer_files(
            vcluster=syncer_name(vc), namespace=ns, service_ip=state.service_ip,
            host_server=self._host_server(), policy=policy, hosts_image=hosts_image(),
        )
        config_hash = cp.config_hash(state.keys, syncer_files)
        if state.hash != config_hash:  # a repair of an unchanged vcluster writes nothing
            state.hash = config_hash
            self._save(state)
        manifests = [
            cp.secret(cp.PKI_SECRET, ns, labels, state.keys),
            cp.secret(cp.SYNCER_SECRET, ns, labels, syncer_files),
            cp.network_policy(ns, labels, self._host_api_endpoints()),
        ]
        if self.access.mode == "ingress":
            manifests.append(cp.ingress(ns, labels, state.address))
        manifests.append(cp.statefulset(ns, labels, image=self.image(), storage_class=None, hash_=state.hash,
                                        service_cidr=state.service_cidr))
        return [change for manifest in manifests for change in self._apply(manifest)]

    def _host_server(self) -> str:
        """The host API as pods reach it: the `kubernetes` Service, by address (the pod
        resolves no names: the namespace's policies keep it from the host's DNS)."""
        service = self.kube.core.read_namespaced_service("kubernetes", "default", _request_timeout=10)
        return f"https://{service.spec.cluster_ip}:{service.spec.ports[0].port}"

    def _host_service_cidr(self) -> str:
        """The host's Service range, from its ServiceCIDR objects (Kubernetes 1.33 and
        later; the one named `kubernetes` first); localkube's range where there are none."""
        try:
            resource = self.kube.dynamic.resources.get(api_version="networking.k8s.io/v1", kind="ServiceCIDR")
            items = resource.get(_request_timeout=10).items
        except (ResourceNotFoundError, ApiException):
            return SERVICE_CIDR
        items = sorted(items, key=lambda item: item.metadata.name != "kubernetes")
        cidrs = [cidr for item in items for cidr in item.spec.cidrs or [] if ":" not in cidr]
        return cidrs[0] if cidrs else SERVICE_CIDR

    def _host_api_endpoints(self) -> list[tuple[str, int]]:
        """Where the `kubernetes` Service leads: NetworkPolicies see traffic after the
        Service's address is translated, so the syncer's egress names these."""
        slices = DiscoveryV1Api(self.kube.api).list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=kubernetes", _request_timeout=10).items
        return sorted({(address, port.port) for s in slices for e in s.endpoints or [] for address in e.addresses
                       for port in s.ports or []})

    # Reading the pod -------------------------------------------------------
    def _pod(self, vc: VClusterRef):
        return read_or_none(self.kube.core.read_namespaced_pod, cp.POD, vc.host_namespace)

    def _pods(self, vc: VClusterRef) -> list[str]:
        label = f"{cp.COMPONENT_LABEL}=control-plane"
        pods = self.kube.core.list_namespaced_pod(vc.host_namespace, label_selector=label, _request_timeout=10)
        return [p.metadata.name for p in pods.items]

    def _claims(self, vc: VClusterRef) -> dict[str, str | None]:
        """The control plane's claims and their volumes' names."""
        claims = self.kube.core.list_namespaced_persistent_volume_claim(
            vc.host_namespace, label_selector=selector(vc.id, vc.labels[INSTALLATION_LABEL]), _request_timeout=10)
        return {c.metadata.name: c.spec.volume_name for c in claims.items}

    def _readyz(self, state: State) -> int | None:
        """What the API server answers on /readyz where tenants reach it, verified
        against the vcluster's CA; None if nothing answers."""
        url = urlsplit(self._server(state))
        context = ssl.create_default_context(cadata=state.keys["ca.crt"])
        connection = http.client.HTTPSConnection(url.hostname, url.port or 443, context=context, timeout=2)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def _wait(self, vc: VClusterRef, done: Callable[[], bool], what: str) -> None:
        timeout = settings.VCPORTAL_CONTROL_PLANE_START_TIMEOUT
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeNotReady(f"{what} after {timeout}s; {self._pod_problem(vc)}")
            time.sleep(POLL)

    def _pod_problem(self, vc: VClusterRef) -> str:
        """What holds the pod up, in a line a person can act on."""
        pod = self._pod(vc)
        if pod is None:
            return f"there is no pod {vc.host_namespace}/{cp.POD} yet"
        for status in _statuses(pod):
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason not in (None, "ContainerCreating"):
                return f"container {status.name}: {waiting.reason}: {waiting.message or ''}".strip()
        for condition in pod.status.conditions or []:
            if condition.status != "True" and condition.message:
                return f"pod {cp.POD}: {condition.message}"
        return f"pod {cp.POD} is {pod.status.phase}"

    # Teardown --------------------------------------------------------------
    def _delete_ours(self, vc: VClusterRef, api_version: str, kind: str, name: str) -> bool:
        existing = self.kube.labels_of(api_version, kind, name, vc.host_namespace)
        if existing is None or ownership_conflict(existing, vc.labels):
            return False
        return self.kube.delete(api_version, kind, name, vc.host_namespace)

    def _wait_volumes_gone(self, vc: VClusterRef, claims: dict[str, str | None]) -> set[str]:
        """Wait until the pods, claims and (unless retained) volumes are gone; returns
        the retained volumes."""
        volumes = {pv for pv in claims.values() if pv}
        retained = {pv for pv in volumes if self._reclaim_policy(pv) == "Retain"}
        deadline = time.monotonic() + settings.VCPORTAL_NAMESPACE_DELETE_TIMEOUT
        while self._pods(vc) or self._claims(vc) or any(self._reclaim_policy(pv) for pv in volumes - retained):
            if time.monotonic() > deadline:
                raise RuntimeNotReady("the control plane's pod, claim or volume is still being deleted")
            time.sleep(POLL)
        return retained

    def _reclaim_policy(self, pv: str) -> str | None:
        """The volume's reclaim policy; None once it is gone."""
        volume = read_or_none(self.kube.core.read_persistent_volume, pv)
        return volume.spec.persistent_volume_reclaim_policy if volume else None


def _statuses(pod) -> list:
    """Every container's status, the sidecars' (init containers) included."""
    return [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]


def _load_balancer_address(service) -> str:
    for entry in (service.status.load_balancer.ingress or []) if service.status.load_balancer else []:
        if entry.ip or entry.hostname:
            return entry.ip or entry.hostname
    return ""

