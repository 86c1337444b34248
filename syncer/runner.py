"""Wires informers to controllers and runs them: one Syncer per vcluster.

Start-up lists everything on both sides before any controller acts, so a restarted
syncer works from a fresh picture: it finds its existing host objects by their marks
(no duplicates), removes those whose virtual object is gone, and carries on.
"""

from __future__ import annotations

import logging
import signal
import threading

from . import names, translate
from .config import SyncerConfig
from .controllers.base import VIRTUAL_INDEX, Context, Controller, virtual_index
from .controllers.claims import ClaimController
from .controllers.configs import ConfigController
from .controllers.endpoints import EndpointsController
from .controllers.events import EventController
from .controllers.nodes import NodeController
from .controllers.pods import PodController
from .controllers.services import ServiceController
from .informer import Informer, key_of
from .kube import CONFIGMAPS, ENDPOINTS, EVENTS, NODES, PODS, PVCS, SECRETS, SERVICES, Client
from .recorder import Recorder

logger = logging.getLogger(__name__)

SYNCED_KINDS = (PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, PVCS)  # what lands on the host
SYNC_TIMEOUT = 60


class Syncer:
    def __init__(self, config: SyncerConfig):
        self.config = config
        target = config.target()
        virtual = Client.from_kubeconfig(config.virtual_kubeconfig)
        host = Client.from_kubeconfig(config.host_kubeconfig)
        ours = f"{names.LABEL_MANAGED_BY}={config.vcluster}"
        vinf = {r: Informer(virtual, r) for r in SYNCED_KINDS}
        vinf[NODES] = Informer(virtual, NODES, label_selector=ours)
        hinf = {r: Informer(host, r, namespace=config.host_namespace, label_selector=ours) for r in SYNCED_KINDS}
        hinf[NODES] = Informer(host, NODES)
        hinf[EVENTS] = Informer(host, EVENTS, namespace=config.host_namespace)
        self.ctx = Context(target, virtual, host, vinf, hinf, Recorder(virtual))
        self._index()
        self.configmaps = ConfigController(self.ctx, CONFIGMAPS)
        self.secrets = ConfigController(self.ctx, SECRETS)
        self.claims = ClaimController(self.ctx)
        self.nodes = NodeController(self.ctx)
        self.pods = PodController(self.ctx, configmaps=self.configmaps, secrets=self.secrets,
                                  claims=self.claims, nodes=self.nodes, workers=config.workers)
        self.services = ServiceController(self.ctx)
        self.endpoints = EndpointsController(self.ctx)
        self.events = EventController(self.ctx)
        self._route()
        self._stopped = threading.Event()

    @property
    def informers(self) -> list[Informer]:
        return [*self.ctx.vinf.values(), *self.ctx.hinf.values()]

    @property
    def controllers(self) -> list[Controller]:
        return [self.configmaps, self.secrets, self.claims, self.nodes, self.pods,
                self.services, self.endpoints, self.events]

    # Running -------------------------------------------------------------------
    def start(self) -> None:
        for informer in self.informers:
            informer.start()
        for informer in self.informers:
            if not informer.synced.wait(SYNC_TIMEOUT):
                raise TimeoutError(f"could not list {informer.name} within {SYNC_TIMEOUT}s")
        for controller in self.controllers:
            controller.resync()
            controller.start()
        logger.info("syncer for vcluster %s is running (host namespace %s)",
                    self.config.vcluster, self.config.host_namespace)

    def resync(self) -> None:
        for controller in self.controllers:
            controller.resync()

    def stop(self) -> None:
        self._stopped.set()
        for controller in self.controllers:
            controller.stop()
        for informer in self.informers:
            informer.stop()

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT, with a full resync every resync_period."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopped.set())
        self.start()
        while not self._stopped.wait(self.config.resync_period):
            self.resync()
        self.stop()
        logger.info("syncer for vcluster %s stopped", self.config.vcluster)

    # Wiring --------------------------------------------------------------------
    def _index(self) -> None:
        vpods = self.ctx.vinf[PODS]
        for index, attribute in (("configmaps", "configmaps"), ("secrets", "secrets"), ("pvcs", "pvcs")):
            vpods.add_index(index, _ref_index(attribute))
        vpods.add_index("node", lambda pod: [pod["spec"]["nodeName"]] if pod["spec"].get("nodeName") else [])
        for resource in SYNCED_KINDS:
            self.ctx.hinf[resource].add_index(VIRTUAL_INDEX, lambda obj: virtual_index(obj, self.config.vcluster))

    def _route(self) -> None:
        """Which controller hears about which change."""
        vinf, hinf = self.ctx.vinf, self.ctx.hinf
        vinf[PODS].add_handler(self._on_virtual_pod)
        for resource, controller, index in ((CONFIGMAPS, self.configmaps, "configmaps"),
                                            (SECRETS, self.secrets, "secrets"),
                                            (PVCS, self.claims, "pvcs")):
            vinf[resource].add_handler(self._on_pod_dependency(controller, index))
        vinf[SERVICES].add_handler(_each(self.services.enqueue))
        vinf[SERVICES].add_handler(_each(self.endpoints.enqueue))  # a selector may come or go
        vinf[ENDPOINTS].add_handler(_each(self.endpoints.enqueue))
        vinf[NODES].add_handler(_each(self.nodes.enqueue))
        by_kind = {"Pod": self.pods, names.TOKEN_KIND: self.pods, "Service": self.services,
                   "Endpoints": self.endpoints, "ConfigMap": self.configmaps, "Secret": self.secrets,
                   "PersistentVolumeClaim": self.claims}
        for resource in SYNCED_KINDS:
            hinf[resource].add_handler(self._on_host_copy(by_kind))
        hinf[NODES].add_handler(_each(self.nodes.enqueue))
        hinf[EVENTS].add_handler(self._on_host_event)

    def _on_virtual_pod(self, old: dict | None, new: dict | None) -> None:
        pod = new or old
        self.pods.enqueue(key_of(pod))
        if old is None or new is None:  # what a pod refers to never changes while it lives
            namespace = pod["metadata"]["namespace"]
            refs = translate.pod_refs(pod)
            for name in refs.configmaps:
                self.configmaps.enqueue(f"{namespace}/{name}")
            for name in refs.secrets:
                self.secrets.enqueue(f"{namespace}/{name}")
        for node in {_node(old), _node(new)} - {None}:
            self.nodes.enqueue(node)

    def _on_pod_dependency(self, controller: Controller, index: str):
        def handle(old: dict | None, new: dict | None) -> None:
            key = key_of(new or old)
            controller.enqueue(key)
            if old is None:  # pods that waited for it may start now
                for pod in self.ctx.vinf[PODS].by_index(index, key):
                    self.pods.enqueue(key_of(pod))
        return handle

    def _on_host_copy(self, by_kind: dict[str, Controller]):
        def handle(old: dict | None, new: dict | None) -> None:
            obj = new or old
            if names.is_ours(obj, self.config.vcluster):
                controller = by_kind.get(names.recorded_kind(obj))
                if controller is not None:
                    controller.enqueue(names.recorded_key(obj))
        return handle

    def _on_host_event(self, old: dict | None, new: dict | None) -> None:
        if new is not None and self.events.wants(new):
            self.events.enqueue(key_of(new))


def _ref_index(attribute: str):
    def index(pod: dict) -> list[str]:
        namespace = pod["metadata"]["namespace"]
        return [f"{namespace}/{name}" for name in getattr(translate.pod_refs(pod), attribute)]
    return index


def _each(enqueue):
    return lambda old, new: enqueue(key_of(new or old))


def _node(pod: dict | None) -> str | None:
    return (pod or {}).get("spec", {}).get("nodeName") or None


def teardown(config: SyncerConfig) -> int:
    """Delete every host object this vcluster's syncer made; returns how many. Objects
    go away on the host's schedule (pods after their grace period)."""
    host = Client.from_kubeconfig(config.host_kubeconfig)
    selector = f"{names.LABEL_MANAGED_BY}={config.vcluster}"
    deleted = 0
    for resource in SYNCED_KINDS:
        for obj in host.list(resource, config.host_namespace, label_selector=selector).get("items") or []:
            if names.is_ours(obj, config.vcluster):
                deleted += host.delete(resource, config.host_namespace, obj["metadata"]["name"])
    return deleted
