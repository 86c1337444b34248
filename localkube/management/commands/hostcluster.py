"""`python manage.py hostcluster start|stop|status|node-address|install-demo`: the embedded
host cluster.

`node-address` prints the address at which this machine reaches the real node: where
the node ports of vclusters' API servers are (what `make run` registers as the host's
access address). `install-demo` installs or upgrades the Helm chart in it (`make
install-demo`, localkube.demo) and prints, last, the portal's URL and an API token."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from localkube import ClusterError, LocalCluster, demo
from localkube.binaries import BinariesMissing
from controlplane.images import ImagesMissing
from localkube.network import NetworkError

DEFAULT_NODES = 3


class Command(BaseCommand):
    help = (
        "Start, stop or inspect the embedded host cluster: kine, kube-apiserver, "
        "kube-controller-manager, kube-scheduler and kwok (fake nodes) on 127.0.0.1, "
        "and optionally a real node (containerd, kubelet, kube-proxy, CoreDNS)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status", "node-address", "install-demo"])
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=settings.HOSTCLUSTER_STATE_DIR,
            help="Directory for the cluster's data, certificates and logs "
            "(default: $VCPORTAL_HOSTCLUSTER_DIR or var/hostcluster).",
        )
        parser.add_argument(
            "--nodes",
            type=int,
            default=DEFAULT_NODES,
            help=f"Fake kwok nodes on a new cluster (default {DEFAULT_NODES}).",
        )
        parser.add_argument(
            "--real-nodes",
            type=int,
            default=0,
            choices=[0, 1],
            help="Nodes that run containers on this machine, on a new cluster (default 0; "
            "needs root, `make kube` and `make images`). Fake nodes are then tainted.",
        )

    def handle(self, action, state_dir, nodes, real_nodes, **options):
        cluster = LocalCluster(state_dir)
        try:
            getattr(self, f"_{action.replace('-', '_')}")(cluster, nodes, real_nodes)
        except (ClusterError, BinariesMissing, ImagesMissing, NetworkError, demo.DemoError) as exc:
            raise CommandError(str(exc)) from exc

    def _start(self, cluster: LocalCluster, nodes: int, real_nodes: int) -> None:
        if nodes < 0 or nodes + real_nodes < 1:
            raise CommandError("--nodes must be at least 1 without --real-nodes: pods need a node to run on")
        config = cluster.init(name="host", nodes=nodes, real_nodes=real_nodes)
        if config.real_nodes != real_nodes:
            self.stderr.write(
                f"the host cluster in {cluster.state_dir} was created with {config.real_nodes} real nodes and keeps "
                "them; to change that, stop it and remove that directory (its workloads go with it)"
            )
        cluster.start(timeout=240 if config.real_nodes else 90)
        self.stderr.write(f"host cluster ready at {cluster.server}")
        self.stdout.write(str(cluster.admin_kubeconfig))

    def _stop(self, cluster: LocalCluster, *_) -> None:
        if not cluster.config_path.exists():
            self.stdout.write(f"no host cluster in {cluster.state_dir}")
            return
        cluster.stop()
        self.stdout.write("host cluster stopped")

    def _status(self, cluster: LocalCluster, *_) -> None:
        if not cluster.config_path.exists():
            raise CommandError(f"no host cluster in {cluster.state_dir}; run `hostcluster start`")
        statuses = cluster.status()
        for s in statuses:
            state = f"running (pid {s.pid})" if s.running else "stopped"
            port = f"127.0.0.1:{s.port}" if s.port else "-"
            self.stdout.write(f"{s.name:<25} {state:<22} {port}")
        self.stdout.write(f"{'api':<25} {'ready' if cluster.is_ready() else 'not ready':<22} {cluster.server}")
        if not all(s.running for s in statuses):
            raise CommandError("some components are stopped")

    def _node_address(self, cluster: LocalCluster, *_) -> None:
        if not cluster.config_path.exists() or not cluster.config.real_nodes:
            raise CommandError(f"the host cluster in {cluster.state_dir} has no real node")
        self.stdout.write(cluster.real_node().link.node_ip)

    def _install_demo(self, cluster: LocalCluster, *_) -> None:
        if not cluster.config_path.exists() or not cluster.config.real_nodes or not cluster.is_ready():
            raise CommandError(f"no running host cluster with a real node in {cluster.state_dir}; "
                               "run `hostcluster start --real-nodes 1` (as root)")
        self.stderr.write(f"install-demo: helm upgrade --install {demo.RELEASE} into namespace {demo.NAMESPACE} "
                          "(a few minutes the first time)")
        installed = demo.install(cluster)
        self.stdout.write(f"Sign in as admin with password {installed.admin_password}; the API takes the token on "
                          "the last line.")
        self.stdout.write(installed.url)
        self.stdout.write(installed.token)
