"""Command lines and readiness probes of each component of a local cluster.

Every TCP listener is bound to 127.0.0.1 on a port from cluster.json: no default port
(8080, 10257, 10259) is left to chance, so many clusters run side by side.

kine, which serves the etcd API without authentication, listens on no TCP port: only
on a unix socket inside the state directory (mode 0700), so only the cluster's owner
reaches the datastore; on 127.0.0.1 any local user could read every Secret. The
socket path is relative, as every component runs in the state directory and a
socket's path may be at most 107 bytes long, which a deep state directory exceeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from controlplane import components as cp

from . import ports

if TYPE_CHECKING:
    from .cluster import ClusterConfig, LocalCluster

SERVICE_IP = "10.96.0.1"  # first address of controlplane SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.0/16"
KINE_SOCKET = "kine/kine.sock"  # relative to the state directory
EGRESS_SOCKET = "egress.sock"  # likewise: where a vcluster's syncer takes its API server's outbound calls


def layout(cluster: LocalCluster, config: ClusterConfig) -> cp.Layout:
    """A cluster's parts in its state directory. Only a vcluster keeps an audit log:
    only the portal and the syncer change host clusters, as themselves."""
    state = cluster.state_dir
    return cp.Layout(
        pki=cluster.pki_dir,
        kine_listen=f"unix://{KINE_SOCKET}",
        datastore=config.datastore or cp.sqlite_datastore(state / "kine" / "state.db"),
        audit=None if config.is_host else (state / "audit-policy.yaml", state / "logs" / "audit.log"),
        egress=state / "egress-selector.yaml" if config.egress else None,
        admission=state / "admission.yaml" if config.egress else None,
    )


def command_line(component: str, cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return _BUILDERS[component](cluster, config)


def _kine(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return cp.kine_args(layout(cluster, config))


def _apiserver(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    files = layout(cluster, config)
    if files.audit:
        policy = files.audit[0]
        if not policy.exists() or policy.read_text() != cp.AUDIT_POLICY:
            policy.write_text(cp.AUDIT_POLICY)
    if files.egress:
        files.egress.write_text(cp.egress_selector_configuration(EGRESS_SOCKET))
    if files.admission:
        files.admission.write_text(cp.admission_configuration(cluster.pki_dir))
        (cluster.pki_dir / cp.WEBHOOK_CREDENTIALS).write_text(cp.webhook_credentials(cluster.pki_dir))
    return cp.apiserver_args(
        files, bind="127.0.0.1", advertise="127.0.0.1", port=config.ports["kube-apiserver"],
        calls_kubelets=config.calls_kubelets, priority_and_fairness=config.is_host,
        # A host's API server runs beside its node, not in it: it reaches the node's
        # address (hostNetwork pods: metrics-server) but no ClusterIP.
        aggregator_routing=config.is_host,
    )


def _controller_manager(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return [
        *cp.controller_manager_args(layout(cluster, config), cluster.state_dir / "kube-controller-manager.kubeconfig",
                                    config.ports["kube-controller-manager"]),
        # Recount every quota twice a minute, not every 5: a request aborted after the
        # quota admitted it leaves the count too high until then (provisioning waits).
        "--resource-quota-sync-period=30s",
    ]


def _scheduler(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return cp.client_component_args("kube-scheduler", cluster.pki_dir, cluster.state_dir / "kube-scheduler.kubeconfig",
                                    config.ports["kube-scheduler"])


def _kwok(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return [
        f"--kubeconfig={cluster.state_dir / 'kwok.kubeconfig'}",
        f"--config={cluster.state_dir / 'kwok.yaml'}",
        # Only the fake nodes: a real node's kubelet reports for itself.
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.1",
    ]


_BUILDERS = {
    "kine": _kine,
    "kube-apiserver": _apiserver,
    "kube-controller-manager": _controller_manager,
    "kube-scheduler": _scheduler,
    "kwok": _kwok,
}


def probe(component: str, cluster: LocalCluster, config: ClusterConfig) -> bool:
    """True once the component serves: kine accepts connections on its socket, the API
    server answers /readyz, the controller manager and scheduler /healthz. kwok serves
    nothing; its work shows as Ready nodes, which LocalCluster.start waits for."""
    if component == "kine":
        return ports.accepts_unix(cluster.state_dir / KINE_SOCKET)
    if component == "kube-apiserver":
        return cluster.is_ready()
    if component == "kwok":
        return True
    try:
        response = requests.get(
            f"https://127.0.0.1:{config.ports[component]}/healthz",
            verify=str(cluster.ca_cert_path),
            timeout=2,
        )
    except requests.RequestException:
        return False
    return response.status_code == 200
