"""The `local` runtime: a vcluster's control plane and syncer as processes on the
worker's machine (localkube's launcher, building from controlplane), one state
directory per vcluster under VCPORTAL_VAR_DIR/vclusters/<id>/. For development and for
tests on hosts whose nodes are all kwok's; nothing of it works when the worker is a
container. The only module outside localkube that drives it."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from controlplane.files import write_private
from controlplane.kubeconfig import ADMIN_USER
from localkube import ClusterError, LocalCluster, network
from localkube.binaries import kube_version
from localkube.ports import allocate
from localkube.processes import ProcessDir, process_alive
from syncer.config import ConfigError, SyncerConfig, load, vcluster_config_path
from syncer.health import probe
from syncer.metricsapi import SERVICE_HOST
from syncer.policy import TenantPolicy

from .base import RuntimeFailure, VClusterRef, hosts_image, syncer_name


class LocalProcessRuntime:
    """Keeps its state in its own directory on the worker: the host cluster and the
    portal's store are not needed."""

    name = "local"

    def __init__(self, host=None, store=None, root: Path | None = None):
        self.root = Path(root or Path(settings.VAR_DIR) / "vclusters")

    def _dir(self, vc: VClusterRef) -> Path:
        return self.root / str(vc.id)

    def quota_share(self) -> dict[str, int]:
        return {}  # nothing of it runs in the host namespace

    def _cluster(self, vc: VClusterRef) -> LocalCluster:
        return LocalCluster(self._dir(vc) / "controlplane")

    def _processes(self, vc: VClusterRef) -> ProcessDir:
        base = self._dir(vc)
        return ProcessDir(base, base / "run", base / "logs")

    def ensure_control_plane(self, vc: VClusterRef, policy: TenantPolicy) -> list[str]:
        if vc.kubernetes_version != kube_version():
            raise RuntimeFailure(
                f"Kubernetes {vc.kubernetes_version} is not available on this worker (it runs {kube_version()})."
            )
        cluster = self._cluster(vc)
        if cluster.config_path.exists() and not cluster.config.egress:
            cluster.enable_egress()  # made before its API server's way out was the syncer: restarted below
        elif cluster.config_path.exists() and all(s.running for s in cluster.status()):
            network.publish(self._api_port(vc))  # again: a port recorded before a reboot is lost
            return []
        self._dir(vc).mkdir(mode=0o700, parents=True, exist_ok=True)
        cluster.init(name=vc.name, extra_sans=tuple(settings.VCPORTAL_VCLUSTER_SANS), egress=True)
        try:
            cluster.start(timeout=settings.VCPORTAL_CONTROL_PLANE_START_TIMEOUT)
        except ClusterError as exc:
            raise RuntimeFailure(str(exc)) from None
        network.publish(self._api_port(vc))
        return ["control plane started"]

    def server(self, vc: VClusterRef) -> str:
        return f"https://{settings.VCPORTAL_VCLUSTER_HOST}:{self._api_port(vc)}"

    def _api_port(self, vc: VClusterRef) -> int:
        return self._cluster(vc).config.ports["kube-apiserver"]

    def pod_api_endpoint(self, vc: VClusterRef) -> tuple[str, int]:
        """Pods reach the API server, which listens on this machine's loopback, at the
        address that local real nodes route here (localkube.network publishes it)."""
        return network.published_address(self._api_port(vc)), network.PUBLISHED_PORT

    def admin_kubeconfig(self, vc: VClusterRef) -> str:
        path = self._dir(vc) / "admin.kubeconfig.tmp"
        self._cluster(vc).write_kubeconfig(path, ADMIN_USER, ("system:masters",), server=self.server(vc))
        try:
            return path.read_text()
        finally:
            path.unlink()

    def ensure_syncer(self, vc: VClusterRef, host_kubeconfig: Callable[[], str], policy: TenantPolicy) -> list[str]:
        """The syncer runs as `python -m syncer`, without Django, with an environment of
        only what it needs (spawn()'s minimal base and PYTHONPATH): no portal secrets."""
        processes, config_path = self._processes(vc), vcluster_config_path(vc.id)
        stored = _stored_config(config_path)
        desired = self._syncer_config(vc, policy, stored.health_address if stored else None)
        if processes.pid("syncer") is not None:
            if desired == stored and stored.health_address:
                return []
            # Its config changed (the host's tenant policy), it predates /readyz, or it
            # names a DNS address, which the syncer now finds itself.
            processes.stop("syncer")
        base = self._dir(vc)
        write_private(base / "host.kubeconfig", host_kubeconfig())
        self._cluster(vc).write_kubeconfig(base / "virtual.kubeconfig", "vcportal-syncer", ("system:masters",))
        health = allocate(["syncer"])["syncer"]
        write_private(config_path, dataclasses.replace(desired, health_address=f"127.0.0.1:{health}").dump())
        processes.spawn("syncer", [sys.executable, "-m", "syncer", "--config", str(config_path)],
                        env={"PYTHONPATH": str(settings.BASE_DIR)})
        return ["syncer started"]

    def _syncer_config(self, vc: VClusterRef, policy: TenantPolicy, health_address: str | None) -> SyncerConfig:
        base = self._dir(vc)
        return SyncerConfig(
            vcluster=syncer_name(vc), virtual_kubeconfig=base / "virtual.kubeconfig",
            host_kubeconfig=base / "host.kubeconfig", host_namespace=vc.host_namespace,
            api_endpoint="{}:{}".format(*self.pod_api_endpoint(vc)),
            health_address=health_address, policy=TenantPolicy.from_dict(policy.to_dict()),  # as stored
            egress_socket=self._cluster(vc).egress_socket, hosts_image=hosts_image(), **self._endpoints(vc),
        )

    def _endpoints(self, vc: VClusterRef) -> dict[str, str]:
        """The syncer's kubelet and metrics APIs: the stored ones, or new ones."""
        stored = _stored_config(vcluster_config_path(vc.id))
        if stored and stored.kubelet_address and stored.metrics_address:
            entries = {name: getattr(stored, name) for name in ENDPOINT_ENTRIES}
            if all(Path(value).exists() for name, value in entries.items() if not name.endswith("_address")):
                return {name: str(value) for name, value in entries.items()}
        return write_endpoints(self._cluster(vc), self._dir(vc))

    def syncer_running(self, vc: VClusterRef) -> bool:
        config = _stored_config(vcluster_config_path(vc.id))
        if self._processes(vc).pid("syncer") is None or config is None or not config.health_address:
            return False
        return probe(config.health_address) == 200

    def destroy(self, vc: VClusterRef) -> list[str]:
        processes, cluster = self._processes(vc), self._cluster(vc)
        pids = {"syncer": processes.pid("syncer")}
        processes.stop("syncer")
        if cluster.config_path.exists():
            network.unpublish(self._api_port(vc))
            pids.update(cluster.pids())
            cluster.stop()
        pids = {name: pid for name, pid in pids.items() if pid is not None}
        still = [name for name, pid in pids.items() if process_alive(pid)]
        if still:
            raise RuntimeFailure(f"still running after stop: {', '.join(still)}")
        removed = [f"process {name} (pid {pid})" for name, pid in pids.items()]
        if self._dir(vc).exists():
            shutil.rmtree(self._dir(vc))
            removed.append(f"state directory {self._dir(vc)}")
        return removed


ENDPOINT_ENTRIES = ("kubelet_address", "kubelet_cert", "kubelet_key", "kubelet_client_ca",
                    "metrics_address", "metrics_cert", "metrics_key", "metrics_ca", "metrics_client_ca")


def write_endpoints(cluster: LocalCluster, directory: Path, ip: str = "127.0.0.1") -> dict[str, str]:
    """Free ports on `ip` for a syncer's kubelet API (syncer.kubelet) and metrics API
    (syncer.metricsapi), their serving certificates from the vcluster's CA, that CA and
    the front-proxy CA, written to `directory`; the syncer config's entries."""
    ports = allocate(["syncer-kubelet", "syncer-metrics"])
    kubelet = cluster.issue_server_certificate("vcportal-syncer-kubelet", (ip,))
    metrics = cluster.issue_server_certificate("vcportal-syncer-metrics", (SERVICE_HOST,))
    ca = cluster.ca_cert_path.read_bytes()
    files = {
        "kubelet_cert": ("kubelet.crt", kubelet.cert_pem), "kubelet_key": ("kubelet.key", kubelet.key_pem),
        "kubelet_client_ca": ("kubelet-client-ca.crt", ca),
        "metrics_cert": ("metrics.crt", metrics.cert_pem), "metrics_key": ("metrics.key", metrics.key_pem),
        "metrics_ca": ("ca.crt", ca),
        "metrics_client_ca": ("front-proxy-ca.crt", cluster.front_proxy_ca_path.read_bytes()),
    }
    for file_name, content in files.values():
        write_private(directory / file_name, content)
    return {"kubelet_address": f"{ip}:{ports['syncer-kubelet']}", "metrics_address": f"{ip}:{ports['syncer-metrics']}",
            **{name: str(directory / file_name) for name, (file_name, _) in files.items()}}


def _stored_config(path: Path) -> SyncerConfig | None:
    try:
        return load(path)
    except ConfigError:  # none yet, or unreadable: written afresh
        return None
