"""A vcluster (bare control plane, no nodes) with its syncer, on the shared host cluster.

Personas: the *tenant* uses the vcluster with its admin kubeconfig, as a team would
through a downloaded kubeconfig; the *operator* is the host cluster's admin. The syncer
runs as its own process (`python -m syncer --config`, as the runtimes start it) with a host token of the
ServiceAccount, Role and bindings production creates (provisioning.manifests.
syncer_identity, applied by server-side apply), so the tests exercise that RBAC.

Pods "run" on kwok's fake nodes: kwok marks them Running with an IP, but no container
starts, so these tests prove what reaches the API servers, not what a process would see.
`make_real_vcluster` syncs to the host cluster with a real node instead, where they run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from controlplane.images import reference
from localkube import LocalCluster
from localkube.ports import allocate
from provisioning import manifests
from provisioning.hostkube import HostKube
from provisioning.runtimes.local import write_endpoints
from syncer import names, rbac
from syncer.health import probe
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from syncer.kinds.ingresses import LABEL_HOLDER as CLAIM_HOLDER
from tests.kube.helpers import eventually, new_namespace

REPO = Path(__file__).resolve().parents[2]
TEST_LABELS = {"vcportal.io/test": "syncer"}


@dataclass
class Clients:
    api: client.ApiClient
    core: client.CoreV1Api = field(init=False)
    apps: client.AppsV1Api = field(init=False)
    rbac: client.RbacAuthorizationV1Api = field(init=False)
    storage: client.StorageV1Api = field(init=False)

    def __post_init__(self):
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.storage = client.StorageV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)


class SyncerProcess:
    def __init__(self, config: Path, log: Path):
        self.config, self.log = config, log
        self.health = yaml.safe_load(config.read_text())["health_address"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncer", "--config", str(self.config), "--log-level", "DEBUG"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        eventually(lambda: probe(self.health) == 200 or self._died(), timeout=60, what="the syncer ready")
        assert self.proc.poll() is None, f"the syncer exited:\n{self.tail()}"

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class VCluster:
    """A running vcluster with its syncer, seen by the tenant and by the operator."""

    name: str
    tenant: Clients
    operator: Clients
    host_namespace: str
    syncer: SyncerProcess
    config_path: Path
    kubeconfig: Path  # the tenant's
    cluster: LocalCluster  # the vcluster's control plane

    def host_name(self, name: str, namespace: str = "default") -> str:
        return names.host_name(name, namespace, self.name)

    def host_pods(self, namespace: str | None = None) -> list[client.V1Pod]:
        selector = f"{names.LABEL_MANAGED_BY}={self.name}"
        if namespace:
            selector += f",{names.LABEL_NAMESPACE}={namespace}"
        return self.operator.core.list_namespaced_pod(self.host_namespace, label_selector=selector).items

    def host_objects(self, only_syncers: bool = True) -> dict[str, list]:
        """Host objects labelled as this vcluster's, by kind: only those the syncer made
        (with its annotations), unless `only_syncers` is False. (The host's endpoints
        controller copies a Service's labels onto the Endpoints it makes.)"""
        selector = f"{names.LABEL_MANAGED_BY}={self.name}"
        core, ns = self.operator.core, self.host_namespace
        return {
            kind: [o for o in list_fn(ns, label_selector=selector).items
                   if not only_syncers or names.ANN_NAME in (o.metadata.annotations or {})]
            for kind, list_fn in (
                ("pods", core.list_namespaced_pod), ("services", core.list_namespaced_service),
                ("endpoints", core.list_namespaced_endpoints), ("configmaps", core.list_namespaced_config_map),
                ("secrets", core.list_namespaced_secret),
                ("persistentvolumeclaims", core.list_namespaced_persistent_volume_claim),
            )
        }


@pytest.fixture
def operator(host_cluster) -> Clients:
    return Clients(host_cluster.api_client())


@pytest.fixture
def make_vcluster(make_cluster, host_cluster, operator, tmp_path_factory):
    """Factory: a vcluster named `name` synced into a host namespace (a fresh one unless
    given). Everything is stopped and the host namespaces deleted at the end."""
    with vcluster_factory(host_cluster, operator, make_cluster, tmp_path_factory) as factory:
        yield factory


@pytest.fixture
def make_real_vcluster(make_cluster, real_host_cluster, tmp_path_factory):
    """make_vcluster on the host cluster with a real node: its pods really run, and
    those with a subdomain get their /etc/hosts from busybox, as the runtimes configure."""
    with vcluster_factory(real_host_cluster, Clients(real_host_cluster.api_client()), make_cluster,
                          tmp_path_factory, hosts_image=reference("busybox")) as factory:
        yield factory


@contextmanager
def vcluster_factory(host_cluster: LocalCluster, operator: Clients, make_cluster, tmp_path_factory, **defaults):
    made: list[VCluster] = []
    host_kube = HostKube(host_cluster.admin_kubeconfig.read_text())

    def factory(name: str = "vc", host_namespace: str | None = None, host_labels: dict | None = None,
                **config) -> VCluster:
        """As both runtimes make them: the API server calls the cluster only through the syncer (syncer.egress)."""
        cluster = make_cluster(name, egress=True)
        namespace = host_namespace or new_namespace(operator.core, f"host-{name}", labels=host_labels)
        work = tmp_path_factory.mktemp(f"syncer-{name}")
        host_kubeconfig = work / "host.kubeconfig"
        host_kubeconfig.touch(mode=0o600)
        for manifest in manifests.claims_setup():
            host_kube.ensure(manifest)
        for manifest in manifests.syncer_identity(namespace, TEST_LABELS) + manifests.host_name_claims(namespace,
                                                                                                      TEST_LABELS):
            host_kube.apply(manifest)
        host_kubeconfig.write_text(rbac.token_kubeconfig(operator.api, host_cluster.server,
                                                         host_cluster.ca_cert_path.read_bytes(), namespace,
                                                         manifests.SYNCER))
        config_path = work / "syncer.yaml"
        config_path.write_text(yaml.safe_dump({
            "vcluster": name,
            "virtual_kubeconfig": str(cluster.admin_kubeconfig),
            "host_kubeconfig": str(host_kubeconfig),
            "host_namespace": namespace,
            "health_address": f"127.0.0.1:{allocate(['syncer'])['syncer']}",
            **write_endpoints(cluster, work),
            "egress_socket": str(cluster.egress_socket),
            **defaults,
            **config,
        }))
        process = SyncerProcess(config_path, work / "syncer.log")
        vc = VCluster(name, Clients(cluster.api_client()), operator, namespace, process, config_path,
                      cluster.admin_kubeconfig, cluster)
        made.append(vc)
        eventually(lambda: vc.tenant.core.read_namespaced_service_account("default", "default"),
                   what="the vcluster's default ServiceAccount")
        process.start()
        return vc

    try:
        yield factory
    finally:
        for vc in made:
            vc.syncer.stop()
            print(f"--- syncer log of {vc.name} ---\n{vc.syncer.tail()}")
        for namespace in {vc.host_namespace for vc in made}:
            host_kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding",
                             manifests.node_reader_binding_name(namespace))
            host_kube.delete("rbac.authorization.k8s.io/v1", "RoleBinding", manifests.node_reader_binding_name(namespace),
                             CLAIMS_NAMESPACE)
            host_kube.delete_labelled("coordination.k8s.io/v1", "Lease", CLAIMS_NAMESPACE,
                                      f"{CLAIM_HOLDER}={namespace}")
            operator.core.delete_namespace(namespace)


@pytest.fixture
def vcluster(make_vcluster) -> VCluster:
    return make_vcluster()
