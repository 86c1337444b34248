"""Fixtures for provisioning against the real host cluster (localkube.testing).

Host pods run on kwok's fake nodes: they reach Running with an IP but no container
starts, and no CNI enforces the NetworkPolicies. These tests prove what the API
servers do (admission, quota, RBAC, authentication), not what a kubelet would.
`real_host` and `provisioned_on_real_node` use the host cluster with a real node
instead, where containers run and the NetworkPolicies are enforced.

The runtime contract (tests in contract/): `runtime_host` runs a test once per runtime, so the production runtime keeps every promise the development
one does: `local` on the kwok host, `kubernetes` on the host with a real node (its
control plane is a pod that must really run; marker realnode).
"""

import os
import signal
from collections import Counter
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.db import connection
from kubernetes import client

from accounts.audit import SYSTEM
from localkube import LocalCluster
from localkube.testing import kubectl
from localkube.processes import process_alive
from portal.kubeapi import read_or_none
from provisioning import pipeline
from provisioning.hostclusters import services
from provisioning.models import HostCluster
from provisioning.runtimes import kubeobjects
from tests.kube.helpers import eventually
from tests.portal.conftest import make_vcluster, world  # noqa: F401  (personas)
from vclusters.models import Phase, VCluster

RUNTIMES = ["local", pytest.param("kubernetes", marks=pytest.mark.realnode)]


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


@dataclass
class RuntimeHost:
    """A host cluster registered with one runtime, and what the contract tests need to
    know of that runtime's control planes."""

    runtime: str
    host: HostCluster
    cluster: LocalCluster
    var_dir: Path

    def _local_control_plane(self, vcluster) -> LocalCluster:
        return LocalCluster(self.var_dir / "vclusters" / str(vcluster.pk) / "controlplane")

    def kill_control_plane(self, vcluster) -> None:
        """As a crash would: the API server's process, or the control plane's pod."""
        if self.runtime == "local":
            apiserver = self._local_control_plane(vcluster).pids()["kube-apiserver"]
            os.kill(apiserver, signal.SIGKILL)
            eventually(lambda: not process_alive(apiserver), what="the API server gone")
        else:
            core = client.CoreV1Api(self.cluster.api_client())
            ns = vcluster.placement.host_namespace
            uid = core.read_namespaced_pod(kubeobjects.POD, ns).metadata.uid
            core.delete_namespaced_pod(kubeobjects.POD, ns, grace_period_seconds=0)
            eventually(lambda: _pod_uid(core, ns) != uid, what="the control plane's pod gone")

    def serves(self, vcluster) -> bool:
        """The vcluster's API server answers /readyz with its admin kubeconfig."""
        with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as file:
            file.write(vcluster.kubeconfig)
            file.flush()
            return kubectl(Path(file.name), "get", "--raw", "/readyz", check=False).stdout.strip() == "ok"

    def processes(self, vcluster) -> dict[str, int]:
        """The control plane's processes on this machine: the local runtime's."""
        if self.runtime != "local":
            return {}
        return self._local_control_plane(vcluster).pids()

    def leftovers(self, vcluster, processes: dict[str, int]) -> list[str]:
        """What of a torn-down vcluster still runs or is stored outside the host's API
        (whose labelled objects the pipeline's own check lists): the local runtime's
        processes and state directory; the kubernetes runtime keeps nothing outside."""
        found = [f"process {name} (pid {pid})" for name, pid in processes.items() if process_alive(pid)]
        state = self.var_dir / "vclusters" / str(vcluster.pk)
        if state.exists():
            found.append(f"state directory {state}")
        return found

    @property
    def stopped_word(self) -> str:
        """What the teardown receipt's runtime step names as stopped."""
        return "kube-apiserver" if self.runtime == "local" else kubeobjects.STATEFULSET


def _pod_uid(core, ns: str) -> str | None:
    pod = read_or_none(core.read_namespaced_pod, kubeobjects.POD, ns)
    return pod.metadata.uid if pod else None


@pytest.fixture(params=RUNTIMES)
def runtime_host(request, db, settings, tmp_path) -> RuntimeHost:
    settings.VAR_DIR = tmp_path / "var"
    if request.param == "local":
        cluster = request.getfixturevalue("host_cluster")
        host = services.register_host_cluster(SYSTEM, name="test-host", runtime="local",
                                               kubeconfig=cluster.admin_kubeconfig.read_text())
    else:
        cluster = request.getfixturevalue("real_host_cluster")
        host = services.register_host_cluster(
            SYSTEM, name="test-host", kubeconfig=cluster.admin_kubeconfig.read_text(), runtime="kubernetes",
            access="nodeport", access_address=cluster.real_node().link.node_ip,
        )
    return RuntimeHost(request.param, host, cluster, settings.VAR_DIR)


@pytest.fixture
def host(db, host_cluster):
    return services.register_host_cluster(SYSTEM, name="test-host", kubeconfig=host_cluster.admin_kubeconfig.read_text(),
                                           runtime="local")




@pytest.fixture
def real_host(db, real_host_cluster):
    """The session's host cluster with a real node, where tenant pods really run."""
    return services.register_host_cluster(
        SYSTEM, name="test-real-host", kubeconfig=real_host_cluster.admin_kubeconfig.read_text(), runtime="local",
    )


@pytest.fixture
def kube_host(db, real_host_cluster):
    """The host cluster with a real node, running vclusters' control planes as pods
    (the `kubernetes` runtime), reached at the node's address, with a tenant policy that
    names the team, as `make run` registers its host."""
    return services.register_host_cluster(
        SYSTEM, name="test-pod-host", kubeconfig=real_host_cluster.admin_kubeconfig.read_text(),
        runtime="kubernetes", access="nodeport", access_address=real_host_cluster.real_node().link.node_ip,
        tenant_policy={"ingress_hosts": ["*.{team}.apps.vcportal.localhost"]},
    )


@pytest.fixture
def provisioned(world, host, var_dir):  # noqa: F811
    """provisioned(name, team=alpha, **fields): a vcluster run through the pipeline in
    this process (no Celery); torn down at the end of the test."""
    yield from _provisioner(world)


@pytest.fixture
def provisioned_on_real_node(world, real_host, var_dir):  # noqa: F811
    """As `provisioned`, on the host cluster with a real node."""
    yield from _provisioner(world)


@pytest.fixture
def provisioned_as_pods(world, kube_host, var_dir):  # noqa: F811
    """As `provisioned`, with the control plane and syncer as a pod on the real node."""
    yield from _provisioner(world)


def _provisioner(world):  # noqa: F811
    created = []

    def make(name: str, team=None, **fields) -> VCluster:
        vcluster = make_vcluster(team or world.alpha, name, **fields)
        created.append(vcluster.pk)
        pipeline.provision(vcluster.pk)
        vcluster.refresh_from_db()
        return vcluster

    yield make
    for pk in created:
        VCluster.objects.filter(pk=pk).exclude(phase=Phase.DELETED).update(phase=Phase.DELETING)
        pipeline.teardown(pk)


class CeleryWorker:
    """A real `celery worker` process (with embedded beat) on the test database."""

    def __init__(self, log_path: Path, env: dict[str, str]):
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, supervised: bool = False, **extra_env: str) -> None:
        """supervised: restarted whenever it exits, as `make run` and production run it."""
        argv = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-B", "--pool", "threads",
                "--concurrency", "6", "--loglevel", "INFO",
                "--schedule", str(self.log_path.with_suffix(".beat"))]
        if supervised:
            argv = [str(ROOT / "scripts" / "supervise.sh"), "worker", *argv]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup, no acknowledgement."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def portal_database_url() -> str:
    """The test database, for processes of ours started by a test (committed data only)."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("tests that start portal processes need PostgreSQL (DATABASE_URL), which `make test` provides")
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def celery_worker(transactional_db, settings, var_dir, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": portal_database_url(),
        "VCPORTAL_VAR_DIR": str(var_dir),
        "VCPORTAL_RECONCILE_INTERVAL": "5",
    }
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no task of an earlier test
    worker = CeleryWorker(tmp_path / "worker.log", env)
    yield worker
    worker.stop()
    for pk in VCluster.objects.exclude(phase=Phase.DELETED).values_list("pk", flat=True):
        VCluster.objects.filter(pk=pk).update(phase=Phase.DELETING)
        pipeline.teardown(pk)


def processes_under(root) -> Counter:
    """How many live processes run from each state directory below `root`, by name."""
    found = Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not process_alive(int(entry)):
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            exe = os.path.basename(os.readlink(f"/proc/{entry}/exe"))
        except OSError:
            continue
        if cwd.startswith(str(root)):
            found[(cwd, exe)] += 1
    return found


ROOT = Path(__file__).resolve().parents[2]
