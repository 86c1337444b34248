"""Builds one vcluster's syncer from the registry of kinds, and runs it.

For every kind in `syncer.kinds.REGISTRY` the runner makes the informers it asks for
(on the vcluster, and on the host namespace or the host cluster), its indexes, its
controller, and routes to that controller the changes it watches; changes of host
objects carrying our marks go to the controller of the kind they record.

Start-up lists everything on both sides before any controller acts, so a restarted
syncer works from a fresh picture: it finds its existing host objects by their marks
(no duplicates, whatever their names), removes those whose virtual object is gone, and
carries on.

It may start before either API server answers (in a pod, beside its vcluster's API
server): it then waits, saying once what for, with /healthz up and /readyz at 503; it
never gives up, since an exit would only make the kubelet back off before a restart.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading

from . import admission, egress, names
from .config import SyncerConfig
from .controller import VIRTUAL_INDEX, Controller, SyncContext, virtual_index
from .egress import EgressProxy
from .health import HealthServer
from .informer import Backoff, Informer
from .kind import OURS, VIRTUAL, Watch
from .kinds import REGISTRY
from .kinds.endpoints import kubernetes_endpoints
from .kube import ApiError, Client
from .kubelet import KubeletServer, synced_host_pod
from .metricsapi import MetricsApi, MetricsServer, register
from .recorder import Recorder
from .tlsserver import server_context

logger = logging.getLogger(__name__)

SYNCED_TO_HOST = tuple(kind for kind in REGISTRY if kind.to_host)


class Syncer:
    def __init__(self, config: SyncerConfig):
        self.config = config
        virtual = Client.from_kubeconfig(config.virtual_kubeconfig)
        host = Client.from_kubeconfig(config.host_kubeconfig)
        ours = f"{names.LABEL_MANAGED_BY}={config.vcluster}"
        vinf, hinf = {}, {}
        for kind in REGISTRY:
            if kind.virtual_objects:
                selector = ours if kind.virtual_objects == OURS else None
                vinf[kind.resource] = Informer(virtual, kind.resource, label_selector=selector)
            if kind.host_objects:
                selector = ours if kind.host_objects == OURS else None
                namespace = config.host_namespace if kind.resource.namespaced else None
                hinf[kind.resource] = Informer(host, kind.resource, namespace=namespace, label_selector=selector)
        for watch in (w for kind in REGISTRY for w in kind.watches if w.side == VIRTUAL):
            if watch.resource not in vinf:  # a resource no kind syncs, watched for its changes (namespaces)
                vinf[watch.resource] = Informer(virtual, watch.resource)
        self.ctx = SyncContext(config.target(), virtual, host, vinf, hinf, Recorder(virtual))
        for kind in REGISTRY:
            self.ctx.controllers[kind.name] = kind.controller(self.ctx, kind, workers=kind.workers or config.workers)
        self._index()
        self._route()
        self._stopped = threading.Event()
        self.ready = threading.Event()  # informers synced and controllers started

    @property
    def informers(self) -> list[Informer]:
        return [*self.ctx.vinf.values(), *self.ctx.hinf.values()]

    @property
    def controllers(self) -> list[Controller]:
        return list(self.ctx.controllers.values())

    # Running -------------------------------------------------------------------
    def start(self) -> None:
        if not self._wait_until_answering():
            return
        for informer in self.informers:
            informer.start()
        for informer in self.informers:  # a list that fails is retried (the informer logs why)
            while not informer.synced.wait(0.1):
                if self._stopped.is_set():  # asked to stop before it could list: nothing to start
                    return
        for controller in self.controllers:
            controller.resync()
            controller.start()
        self._register_in_vcluster()
        self.ready.set()
        logger.info("syncer for vcluster %s is running (host namespace %s)",
                    self.config.vcluster, self.config.host_namespace)

    def _wait_until_answering(self) -> bool:
        """Wait for both API servers to serve; False if asked to stop meanwhile."""
        for side, client in (("vcluster", self.ctx.virtual), ("host", self.ctx.host)):
            # Twice a second at most: in a pod the syncer starts before its API server,
            # and each second it sleeps past the server's start is a second of every create.
            backoff, waited = Backoff(limit=0.5), False
            while (why := client.unready()) is not None:
                if not waited:
                    logger.info("waiting for the %s API server at %s to serve (%s)", side, client.server, why)
                    waited = True
                if self._stopped.wait(backoff.next()):
                    return False
            if waited:
                logger.info("the %s API server at %s serves", side, client.server)
        return True

    def resync(self) -> None:
        for controller in self.controllers:
            controller.resync()
        self._register_in_vcluster()

    def _register_in_vcluster(self) -> None:
        """(Re)write what the syncer keeps in the vcluster, which a tenant may have deleted:
        its metrics.k8s.io, its Service and pod webhooks, and the `kubernetes` Service's endpoints."""
        metrics, api = self.config.metrics_listen_address(), self.config.api_address()
        try:
            if metrics:
                ca = self.config.metrics_ca.read_bytes()
                register(self.ctx.virtual, metrics, ca)
                self.ctx.virtual.apply(admission.WEBHOOKS, admission.configuration(metrics[1], ca), names.FIELD_MANAGER)
                self.ctx.virtual.apply(admission.VALIDATING_WEBHOOKS, admission.pod_configuration(metrics[1], ca),
                                       names.FIELD_MANAGER)
            for resource, obj in kubernetes_endpoints(api) if api else ():
                self.ctx.virtual.apply(resource, obj, names.FIELD_MANAGER)
        except (ApiError, OSError) as exc:  # retried at the next resync
            logger.warning("could not write the syncer's objects in the vcluster: %s", exc)

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
        servers = [s for s in (self._serve_health(), self._serve_kubelet(), self._serve_metrics(), self._serve_egress())
                   if s is not None]
        self.start()
        while not self._stopped.wait(self.config.resync_period):
            self.resync()
        self.stop()
        # Together: each shutdown waits up to its serve_forever's half-second poll.
        stopping = [threading.Thread(target=server.shutdown) for server in servers]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        logger.info("syncer for vcluster %s stopped", self.config.vcluster)

    def _serve_health(self) -> HealthServer | None:
        address = self.config.health_listen_address()
        if address is None:
            return None
        server = HealthServer(address, self.ready.is_set)
        server.start()
        return server

    def _serve_kubelet(self) -> KubeletServer | None:
        address = self.config.kubelet_listen_address()
        if address is None:
            return None
        context = server_context(self.config.kubelet_cert, self.config.kubelet_key, self.config.kubelet_client_ca)
        server = KubeletServer(address, context, functools.partial(synced_host_pod, self.ctx),
                               lambda: self.ctx.host.connection)
        server.start()
        return server

    def _serve_metrics(self) -> MetricsServer | None:
        address = self.config.metrics_listen_address()
        if address is None:
            return None
        context = server_context(self.config.metrics_cert, self.config.metrics_key, self.config.metrics_client_ca)
        server = MetricsServer(address, context, MetricsApi(self.ctx),
                               webhooks={admission.PATH: functools.partial(admission.review, self.ctx),
                                         admission.POD_PATH: functools.partial(admission.review_pod, self.ctx,
                                                                               self.ready.is_set)})
        server.start()
        return server

    def _serve_egress(self) -> EgressProxy | None:
        if self.config.egress_socket is None:
            return None
        own = {a for a in (self.config.kubelet_listen_address(), self.config.metrics_listen_address()) if a}
        server = EgressProxy(self.config.egress_socket, functools.partial(egress.resolve, self.ctx, own),
                             functools.partial(egress.host_pod_of, self.ctx), lambda: self.ctx.host.connection)
        server.start()
        return server

    # Wiring --------------------------------------------------------------------
    def _informer(self, side: str, resource) -> Informer:
        return (self.ctx.vinf if side == VIRTUAL else self.ctx.hinf)[resource]

    def _index(self) -> None:
        for kind in REGISTRY:
            for index in kind.indexes:
                self._informer(index.side, index.resource).add_index(index.name, index.values)
        for kind in SYNCED_TO_HOST:
            self.ctx.hinf[kind.resource].add_index(VIRTUAL_INDEX, lambda obj: virtual_index(obj, self.config.vcluster))

    def _route(self) -> None:
        """Which controller hears about which change."""
        for kind in REGISTRY:
            controller = self.ctx.controllers[kind.name]
            for watch in kind.all_watches():
                self._informer(watch.side, watch.resource).add_handler(self._to(controller, watch))
        by_recorded_kind = {name: self.ctx.controllers[kind.name]
                            for kind in SYNCED_TO_HOST for name in (kind.name, *kind.also_records)}
        for kind in SYNCED_TO_HOST:
            self.ctx.hinf[kind.resource].add_handler(self._on_host_copy(by_recorded_kind))

    def _to(self, controller: Controller, watch: Watch):
        def handle(old: dict | None, new: dict | None) -> None:
            for key in watch.keys(self.ctx, old, new):
                controller.enqueue(key)
        return handle

    def _on_host_copy(self, by_recorded_kind: dict[str, Controller]):
        def handle(old: dict | None, new: dict | None) -> None:
            obj = new or old
            if names.is_ours(obj, self.config.vcluster):
                controller = by_recorded_kind.get(names.recorded_kind(obj))
                if controller is not None:
                    controller.enqueue(names.recorded_key(obj))
        return handle


def teardown(config: SyncerConfig) -> int:
    """Delete every host object this vcluster's syncer made; returns how many. Objects
    go away on the host's schedule (pods after their grace period)."""
    host = Client.from_kubeconfig(config.host_kubeconfig)
    selector = f"{names.LABEL_MANAGED_BY}={config.vcluster}"
    deleted = 0
    for kind in SYNCED_TO_HOST:
        items = host.list(kind.resource, config.host_namespace, label_selector=selector).get("items") or []
        for obj in items:
            if names.is_ours(obj, config.vcluster):
                deleted += host.delete(kind.resource, config.host_namespace, obj["metadata"]["name"])
    return deleted
