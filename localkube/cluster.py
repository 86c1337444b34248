"""Start and stop a real Kubernetes control plane on 127.0.0.1.

A cluster is a state directory (mode 0700) and up to five processes, each in its own
process group with the state directory as its working directory:

    kine -> kube-apiserver -> kube-controller-manager [-> kube-scheduler -> kwok]

kine serves the etcd API over SQLite (a file in the state directory) or PostgreSQL.
Host clusters add kube-scheduler and kwok, which stands in for the kubelet: it keeps
fake nodes Ready and moves pods bound to them to Running. No container ever runs.

Processes outlive the Python process that started them; a later LocalCluster on the
same state directory finds them again through their pid files and /proc.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import requests

from controlplane import kubeconfig, pki
from controlplane.kubeconfig import ADMIN_USER
from controlplane.files import write_private

from . import binaries, network, ports
from .components import EGRESS_SOCKET, SERVICE_IP, command_line, probe
from .processes import ProcessDir


CONTROL_PLANE = ("kine", "kube-apiserver", "kube-controller-manager")
HOST_EXTRAS = ("kube-scheduler", "kwok")
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "kube-router")  # a real node's, see realnode.py


class ClusterError(RuntimeError):
    """A component failed to start or stop; the message names it and quotes its log."""


@dataclass
class ClusterConfig:
    """What is decided once, when a state directory is first used, and kept in cluster.json."""

    name: str
    nodes: int = 0
    datastore: str = ""  # "" means SQLite in the state directory, else a PostgreSQL URL
    ports: dict[str, int] = field(default_factory=dict)
    extra_sans: list[str] = field(default_factory=list)
    real_nodes: int = 0  # nodes that run containers (realnode.py); 0 or 1
    node_link: int = -1  # the real node's link to the host (network.NodeLink.index)
    egress: bool = False  # a vcluster whose API server calls the cluster through its syncer (syncer.egress)

    @property
    def is_host(self) -> bool:
        """A host cluster runs pods (scheduler and kwok or real nodes); otherwise the
        cluster is a bare control plane, the shape of a vcluster."""
        return self.nodes > 0 or self.real_nodes > 0

    @property
    def calls_kubelets(self) -> bool:
        """The API server calls kubelets (logs, exec, port-forward) with a client
        certificate: a real node's, or, in a vcluster, its syncer's (syncer.kubelet)."""
        return self.real_nodes > 0 or not self.is_host

    @property
    def components(self) -> tuple[str, ...]:
        return CONTROL_PLANE + (HOST_EXTRAS if self.is_host else ())


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    port: int | None


class LocalCluster:
    def __init__(self, state_dir: Path | str, bin_dir: Path | None = None):
        self.state_dir = Path(state_dir).resolve()
        self._bin_dir = bin_dir
        self.processes = ProcessDir(
            self.state_dir, self.state_dir / "run", self.state_dir / "logs"
        )

    # Layout ---------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.state_dir / "cluster.json"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def log_path(self, component: str) -> Path:
        return self.processes.log_path(component)

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = binaries.bin_dir()
        return self._bin_dir

    @property
    def config(self) -> ClusterConfig:
        return ClusterConfig(**json.loads(self.config_path.read_text()))

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.config.ports['kube-apiserver']}"

    @property
    def ca_cert_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    # Lifecycle ------------------------------------------------------------
    def init(
        self,
        *,
        name: str = "local",
        nodes: int = 0,
        datastore: str = "",
        extra_sans: tuple[str, ...] = (),
        real_nodes: int = 0,
        egress: bool = False,
    ) -> ClusterConfig:
        """Create the state directory, PKI and kubeconfigs unless they exist already.
        An existing state directory keeps its configuration."""
        if self.config_path.exists():
            return self.config
        if real_nodes not in (0, 1):
            raise ClusterError("a cluster has 0 or 1 real nodes (pods on two would need routes between them)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        for sub in ("pki", "logs", "run", "kine"):
            (self.state_dir / sub).mkdir(mode=0o700, exist_ok=True)
        config = ClusterConfig(
            name=name, nodes=nodes, datastore=datastore, extra_sans=list(extra_sans),
            real_nodes=real_nodes, egress=egress,
        )
        if real_nodes:
            from .network import allocate_link

            link = allocate_link(self.state_dir)
            config.node_link = link.index
            config.extra_sans.append(link.host_ip)  # the address the node reaches the API server at
        config.ports = ports.allocate(config.components)
        self._write_pki(config)
        self._write_kubeconfigs(config)
        # Written last: its presence means init finished. A process killed halfway
        # leaves no cluster.json, and the next init starts over.
        self._save(config)
        return config

    def enable_egress(self) -> None:
        """Send the API server's calls into the cluster through the syncer (config.egress)
        in a vcluster made before that; the next start restarts the API server with it."""
        config = self.config
        if not config.egress:
            self._save(replace(config, egress=True))

    def start(self, timeout: float = 90) -> None:
        """Start whatever is not running and return once the cluster is ready.
        Idempotent: running components are left alone, unless their command line is
        not the one this code gives them (started by an older version, e.g. kine on
        TCP before its socket); those are restarted."""
        if not self.config_path.exists():
            self.init()
        config = self._reclaim_ports(self.config)
        self._ensure_later_keys(config)
        deadline = time.monotonic() + timeout
        for component in config.components:
            argv = self._argv(component, config)
            if self.processes.argv(component) not in (None, argv):
                self.processes.stop(component)
            if self.processes.pid(component) is None:
                self.processes.spawn(component, argv, env=go_runtime_env())
            self._wait_ready(component, config, deadline)
        if config.nodes:
            self._ensure_nodes(config.nodes, deadline, taint=config.real_nodes > 0)
        if config.real_nodes:
            self.real_node(config).start(deadline)

    def stop(self, timeout: float = 20, discard: bool = False) -> None:
        """Stop every component, newest first; SIGKILL what ignores SIGTERM. A real
        node goes first, with its containers, mounts and network. discard: the state is
        thrown away next (a test's cluster), so the control plane is killed: a clean
        shutdown that nobody reads costs about 2 s of kube-apiserver and kine."""
        if self.config_path.exists() and self.config.real_nodes:
            self.real_node(self.config).stop(timeout)
        end = self.processes.kill if discard else self.processes.stop
        for component in reversed(CONTROL_PLANE + HOST_EXTRAS):
            end(component, timeout)

    def status(self) -> list[ComponentStatus]:
        config = self.config
        result = []
        for component in config.components + (NODE_PROCESSES if config.real_nodes else ()):
            pid = self.processes.pid(component)
            result.append(
                ComponentStatus(component, pid, pid is not None, config.ports.get(component))
            )
        return result

    def is_ready(self) -> bool:
        try:
            return self._get("/readyz").status_code == 200
        except requests.RequestException:
            return False

    def real_node(self, config: ClusterConfig | None = None):
        from .realnode import RealNode

        return RealNode(self, config or self.config)

    def pids(self) -> dict[str, int]:
        return {s.name: s.pid for s in self.status() if s.pid is not None}

    # Clients --------------------------------------------------------------
    def api_client(self):
        """A `kubernetes` client ApiClient authenticated as the cluster admin."""
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.admin_kubeconfig))

    def write_kubeconfig(
        self, path: Path, user: str, groups: tuple[str, ...] = (), server: str | None = None
    ) -> pki.KeyPair:
        """Write a kubeconfig with a fresh client certificate for `user` in `groups`;
        returns that certificate."""
        return self._write_kubeconfig(self.config, path, user, groups, server)

    def _write_kubeconfig(
        self, config: ClusterConfig, path: Path, user: str, groups: tuple[str, ...] = (),
        server: str | None = None,
    ) -> pki.KeyPair:
        cert = pki.issue(self._ca(), user, organizations=groups, client=True)
        server = server or f"https://127.0.0.1:{config.ports['kube-apiserver']}"
        content = kubeconfig.render(config.name, server, self.ca_cert_path.read_bytes(), cert, user)
        write_private(path, content.encode())
        return cert

    def issue_server_certificate(self, common_name: str, server_names: tuple[str, ...]) -> pki.KeyPair:
        """A serving certificate from the cluster's CA, for a server its API server
        calls: a syncer's kubelet and metrics APIs (syncer.kubelet, syncer.metricsapi)."""
        return pki.issue(self._ca(), common_name, server_names=server_names)

    # Internals ------------------------------------------------------------
    def _ca(self) -> pki.KeyPair:
        return pki.KeyPair(
            (self.pki_dir / "ca.crt").read_bytes(), (self.pki_dir / "ca.key").read_bytes()
        )

    def _write_pki(self, config: ClusterConfig) -> None:
        ca = pki.new_ca(f"vcportal-{config.name}-ca")
        sa_key = pki.new_key()
        files = {
            "ca.crt": ca.cert_pem, "ca.key": ca.key_pem,
            "sa.key": pki.key_pem(sa_key), "sa.pub": pki.public_key_pem(sa_key),
        }
        # The API server and the health endpoints of the other components all serve
        # certificates from the cluster's CA, so every probe verifies TLS.
        for component, sans in (
            ("kube-apiserver", self._api_server_names(config)),
            ("kube-controller-manager", ("127.0.0.1",)),
            ("kube-scheduler", ("127.0.0.1",)),
        ):
            pair = pki.issue(ca, component, server_names=sans)
            files[f"{component}.crt"], files[f"{component}.key"] = pair.cert_pem, pair.key_pem
        for name, content in files.items():
            write_private(self.pki_dir / name, content)
        self._ensure_later_keys(config)

    def _ensure_later_keys(self, config: ClusterConfig) -> None:
        """Keys a cluster made by an older version lacks, issued on start: the API
        server's identity towards kubelets (logs, exec, port-forward) and the
        aggregation layer's (pki.front_proxy_files)."""
        if config.calls_kubelets and not (self.pki_dir / "kubelet-client.key").exists():
            pair = pki.issue(self._ca(), "kube-apiserver-kubelet-client", organizations=("system:masters",),
                             client=True)
            write_private(self.pki_dir / "kubelet-client.crt", pair.cert_pem)
            write_private(self.pki_dir / "kubelet-client.key", pair.key_pem)
        if not (self.pki_dir / "front-proxy-client.key").exists():
            for name, content in pki.front_proxy_files(config.name).items():
                write_private(self.pki_dir / name, content)

    @property
    def egress_socket(self) -> Path:
        """Where its syncer listens for the API server's outbound calls (config.egress)."""
        return self.state_dir / EGRESS_SOCKET

    @property
    def front_proxy_ca_path(self) -> Path:
        """The CA of the API server's client certificate towards aggregated APIs."""
        return self.pki_dir / "front-proxy-ca.crt"

    @staticmethod
    def _api_server_names(config: ClusterConfig) -> tuple[str, ...]:
        """What the API server's certificate names, among them the address at which
        real nodes' pods reach it once it is published (network.publish)."""
        return (
            "127.0.0.1", "localhost", SERVICE_IP, "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
            network.published_address(config.ports["kube-apiserver"]), *config.extra_sans,
        )

    def _write_kubeconfigs(self, config: ClusterConfig) -> None:
        admin = self._write_kubeconfig(config, self.admin_kubeconfig, ADMIN_USER, ("system:masters",))
        # The same identity as files, for the readiness probe.
        write_private(self.pki_dir / "admin.crt", admin.cert_pem)
        write_private(self.pki_dir / "admin.key", admin.key_pem)
        self._write_kubeconfig(
            config, self.state_dir / "kube-controller-manager.kubeconfig", "system:kube-controller-manager"
        )
        if config.is_host:
            self._write_kubeconfig(
                config, self.state_dir / "kube-scheduler.kubeconfig", "system:kube-scheduler"
            )
            # kwok updates every node and pod status, as many kubelets would together.
            self._write_kubeconfig(config, self.state_dir / "kwok.kubeconfig", "kwok", ("system:masters",))
            (self.state_dir / "kwok.yaml").write_bytes(
                (self.bin_dir / "kwok-stages.yaml").read_bytes()
            )

    def _argv(self, component: str, config: ClusterConfig) -> list[str]:
        return [str(self.bin_dir / component), *command_line(component, self, config)]

    def _wait_ready(self, component: str, config: ClusterConfig, deadline: float) -> None:
        while True:
            if self.processes.exited(component):
                raise ClusterError(self._failure(component, "exited during start-up"))
            if probe(component, self, config):
                return
            if time.monotonic() > deadline:
                raise ClusterError(self._failure(component, "was not ready in time"))
            time.sleep(0.05)

    def _failure(self, component: str, what: str) -> str:
        return (
            f"{component} {what} (cluster {self.state_dir}); last lines of its log:\n"
            f"{self.processes.log_tail(component)}"
        )

    def _get(self, path: str, timeout: float = 2) -> requests.Response:
        return requests.get(
            self.server + path,
            cert=(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key")),
            verify=str(self.ca_cert_path),
            timeout=timeout,
        )

    def _ensure_nodes(self, count: int, deadline: float, taint: bool) -> None:
        from .nodes import ensure_fake_nodes

        try:
            ensure_fake_nodes(self.api_client(), count, deadline, taint)
        except TimeoutError as exc:
            raise ClusterError(self._failure("kwok", str(exc))) from exc

    def _reclaim_ports(self, config: ClusterConfig) -> ClusterConfig:
        """Move a stopped component whose port another process took since to a free
        port, and rewrite what names that port."""
        taken = [
            c for c, port in config.ports.items()
            if self.processes.pid(c) is None and not ports.is_free(port)
        ]
        if not taken:
            return config
        config.ports.update(ports.allocate(taken))
        if "kube-apiserver" in taken:
            self._write_kubeconfigs(config)
            pair = pki.issue(self._ca(), "kube-apiserver", server_names=self._api_server_names(config))
            write_private(self.pki_dir / "kube-apiserver.crt", pair.cert_pem)
            write_private(self.pki_dir / "kube-apiserver.key", pair.key_pem)
        self._save(config)
        return config

    def _save(self, config: ClusterConfig) -> None:
        write_private(self.config_path, json.dumps(asdict(config), indent=2).encode())


def go_runtime_env() -> dict[str, str]:
    """Go runtime settings for every component. GOGC=50 (Go's default is 100) trims
    ~35 MiB of idle heap from a control plane for ~0.3 s more start-up; 25 saves 20 MiB
    more but costs over a second of start. See docs/performance.md, Control plane."""
    return {"GOGC": os.environ.get("VCPORTAL_KUBE_GOGC", "50")}
