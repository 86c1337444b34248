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

from pathlib import PurePath
from typing import TYPE_CHECKING

import requests

from . import ports

if TYPE_CHECKING:
    from .cluster import ClusterConfig, LocalCluster

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.0/16"
HEALTH_PATHS = "/healthz,/readyz,/livez"
SQLITE_OPTIONS = "_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate"
KINE_SOCKET = "kine/kine.sock"  # relative to the state directory
ADMISSION_PLUGINS = "NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,PodSecurity,NodeRestriction"


def kine_endpoint(cluster: LocalCluster, config: ClusterConfig) -> str:
    if config.datastore:
        return config.datastore
    return f"sqlite://{cluster.state_dir / 'kine' / 'state.db'}?{SQLITE_OPTIONS}"


def command_line(component: str, cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return _BUILDERS[component](cluster, config)


def _kine(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return [
        f"--listen-address=unix://{KINE_SOCKET}",
        "--metrics-bind-address=0",
        f"--endpoint={kine_endpoint(cluster, config)}",
    ]


def _apiserver(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    pki = cluster.pki_dir
    return [
        f"--etcd-servers=unix://{KINE_SOCKET}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={config.ports['kube-apiserver']}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
        f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--anonymous-auth=false",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={ADMISSION_PLUGINS}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        # Loopback addresses are not valid Endpoints; nothing outside reaches them.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        # API Priority and Fairness shares an API server between many clients; a
        # vcluster's serves one tenant, and skipping its bootstrap saves ~1.4 s of start.
        f"--enable-priority-and-fairness={str(config.is_host).lower()}",
    ] + _kubelet_client(cluster, config) + _audit(cluster, config)


# What a vcluster's API server logs: who changed what, never a request or response body
# (Metadata level: Secrets stay out of the log), and no reads.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""


def _audit(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    """A vcluster's audit log, logs/audit.log: changes made through the portal's gateway
    name the person it impersonates (impersonatedUser). Rotated at 10 MiB, two old files
    kept, so it stays under 30 MiB. Host clusters keep none: only the portal and the
    syncer change them, as themselves."""
    if config.is_host:
        return []
    policy = cluster.state_dir / "audit-policy.yaml"
    if not policy.exists() or policy.read_text() != AUDIT_POLICY:
        policy.write_text(AUDIT_POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={cluster.state_dir / 'logs' / 'audit.log'}",
        "--audit-log-maxsize=10",
        "--audit-log-maxbackup=2",
        "--audit-log-maxage=7",
    ]


def _kubelet_client(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    """How the API server reaches kubelets: its own client certificate, and theirs
    verified against the cluster CA."""
    if not config.calls_kubelets:
        return []
    pki = cluster.pki_dir
    return [
        f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        # Node names resolve nowhere; the InternalIP is the node's end of its link.
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _controller_manager(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    return [
        *controller_manager_args(
            cluster.pki_dir, cluster.state_dir / "kube-controller-manager.kubeconfig",
            config.ports["kube-controller-manager"],
        ),
        # Recount every quota twice a minute, not every 5: a request aborted after the
        # quota admitted it leaves the count too high until then (provisioning waits).
        "--resource-quota-sync-period=30s",
    ]


def controller_manager_args(pki: PurePath, kubeconfig: PurePath, port: int) -> list[str]:
    """kube-controller-manager's flags, as a vcluster's runs on either runtime: files in
    `pki` under their usual names (provisioning.controlplane mounts them the same)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={pki / 'kube-controller-manager.crt'}",
        f"--tls-private-key-file={pki / 'kube-controller-manager.key'}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        # Building each controller's client creates its ServiceAccount and asks for a
        # token, some 150 requests through one client; at the default 20 per second
        # that alone held the controllers (and the `view` role's rules) back 5 s.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--controllers=*",
        "--profiling=false",
    ]


def _scheduler(cluster: LocalCluster, config: ClusterConfig) -> list[str]:
    pki = cluster.pki_dir
    kubeconfig = cluster.state_dir / "kube-scheduler.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
        "--bind-address=127.0.0.1",
        f"--secure-port={config.ports['kube-scheduler']}",
        f"--tls-cert-file={pki / 'kube-scheduler.crt'}",
        f"--tls-private-key-file={pki / 'kube-scheduler.key'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


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
