"""A real node in a local host cluster: containerd, runc, kubelet, kube-proxy and
kube-router's NetworkPolicy firewall.

The node is a network namespace (see network.py) and a directory, `<state>/node`:

    containerd/   root (images, metadata: kept across restarts), state (runtime:
                  removed on stop), certs.d (how to reach the local registry)
    kubelet/      the kubelet's --root-dir: pod volumes, plugins, checkpoints
    pod-logs/     container logs, as /var/log/pods on a node
    cni/          the bridge network's config and host-local's address leases
    runc/         runc's container state
    local-path/   the volumes of the default StorageClass (addons.py), one directory
                  a PV: kept across restarts, removed with their PVs or the state directory

containerd's sockets are in /run/vcp-<id>, as socket paths must be short. Nothing
lives in the machine-wide defaults (/var/lib/kubelet, /run/containerd,
/var/lib/cni, /kubepods), so two clusters on one machine stay apart: containers go to
the cgroup `/vcportal-<id>` in every v1 hierarchy, the kubelet's cgroupRoot.

The kubelet authenticates with its own certificate from the cluster CA
(`system:node:<name>` in `system:nodes`), so the Node authorizer and NodeRestriction
treat it as they treat any kubelet; it serves with a certificate for its node
address, which the API server verifies. Pods use the cgroupfs driver (this machine
has the cgroup v1 hierarchy: `failCgroupV1: false`) and a bridge network with
masquerading; kube-proxy programs Services inside the node's namespace.

`stop()` kills every process of the node (those in its namespace, those in its
cgroups), unmounts what they mounted under the node directory, removes the cgroups,
the namespace and the host's nat chain. Pods stay in the API, so the next start
brings their containers back: a restart keeps workloads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane import images, pki
from controlplane.components import CLUSTER_DOMAIN, SERVICE_CIDR
from controlplane.files import write_private
from syncer.kinds.endpoints import kubernetes_endpoints

from . import addons, binaries, network
from .processes import process_alive

from .cluster import NODE_PROCESSES, ClusterError, go_runtime_env

if TYPE_CHECKING:
    from .cluster import ClusterConfig, LocalCluster

NODE_NAME = "realnode-0"
POD_SUBNET = "10.88.0.0/24"  # the node's pods; masqueraded, so every cluster may reuse it
CLUSTER_DNS_IP = "10.96.0.10"
KUBELET_PORT = 10250
CGROUP_ROOT = Path("/sys/fs/cgroup")


class RealNode:
    def __init__(self, cluster: LocalCluster, config: ClusterConfig):
        self.cluster = cluster
        self.config = config
        self.link = network.NodeLink(network.cluster_id(cluster.state_dir), config.node_link)
        self.dir = cluster.state_dir / "node"

    # Layout ---------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """containerd's sockets: a unix socket path must stay under 108 bytes, which a
        state directory deep in /tmp can exceed."""
        return Path("/run") / self.link.netns

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def cgroup_name(self) -> str:
        return f"vcportal-{self.link.cluster_id}"

    @property
    def volumes_dir(self) -> Path:
        return self._path("local-path")

    def _path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    # Lifecycle ------------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Bring the node up (what runs already is left alone) and return once it is
        Ready, the `kubernetes` Service leads to the API server, NetworkPolicies are
        enforced, CoreDNS answers, volumes can be provisioned and Ingresses served."""
        node_bin = binaries.node_bin_dir()
        binaries.require(self.cluster.bin_dir, binaries.NODE_COMPONENTS)
        images.check_registry()
        registry_port = int(images.registry_address().rsplit(":", 1)[1])
        api_port = self.config.ports["kube-apiserver"]
        network.create(self.link, [api_port, registry_port], SERVICE_CIDR)
        network.keep_from_pods(self.link, POD_SUBNET, [registry_port])
        self._make_cgroups()
        self._write_files(node_bin, api_port)
        self._spawn("containerd", node_bin)
        self._wait("containerd", self.containerd_socket.exists, deadline)
        self._spawn("kubelet", node_bin)
        self._spawn("kube-proxy", node_bin)
        api = self.cluster.api_client()
        publish_api_endpoint(api, self.link.host_ip, api_port)
        self._wait("kubelet", lambda: _node_ready(api, NODE_NAME), deadline)
        addons.deploy(
            self.cluster.bin_dir / "kubectl", self.cluster.admin_kubeconfig,
            images.reference("coredns"), CLUSTER_DNS_IP, CLUSTER_DOMAIN,
            addons.local_path_manifests(
                images.reference("local-path-provisioner"), images.reference("busybox"), NODE_NAME, self.volumes_dir
            ) + addons.ingress_manifests(images.reference("ingress"))
            + addons.metrics_server_manifests(images.reference("metrics-server"), self._metrics_server_tls(),
                                              self.cluster.ca_cert_path.read_bytes()),
        )
        self._spawn("kube-router", node_bin)  # once its RBAC exists
        self._wait("kubelet", lambda: _deployment_available(api, "kube-system", "coredns"), deadline)
        self._wait("kubelet", lambda: _deployment_available(
            api, addons.LOCAL_PATH_NAMESPACE, "local-path-provisioner"), deadline)
        self._wait("kubelet", lambda: _deployment_available(api, addons.INGRESS_NAMESPACE, "vcportal-ingress"), deadline)

    def _metrics_server_tls(self) -> pki.KeyPair:
        """metrics-server's serving certificate, issued once: each start applies the same."""
        cert, key = self._path("pki", "metrics-server.crt"), self._path("pki", "metrics-server.key")
        if not key.exists():
            pair = pki.issue(self.cluster._ca(), "metrics-server", server_names=(addons.METRICS_SERVER_SERVICE,))
            write_private(cert, pair.cert_pem)
            write_private(key, pair.key_pem)
        return pki.KeyPair(cert.read_bytes(), key.read_bytes())

    def _spawn(self, name: str, node_bin: Path) -> None:
        if self.cluster.processes.pid(name) is not None:
            return
        # containerd finds its shim on PATH; the CNI plugins, kube-proxy and
        # kube-router call iptables and ipset.
        env = {**go_runtime_env(), "PATH": f"{node_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        with network.entered(self.link):
            self.cluster.processes.spawn(name, self._argv(name, node_bin), env=env)

    def stop(self, timeout: float = 20) -> None:
        for name in reversed(NODE_PROCESSES):
            self.cluster.processes.stop(name, timeout)
        self._kill_the_rest(timeout)
        _unmount_under(self.dir)
        self._remove_cgroups()
        network.delete(self.link)
        shutil.rmtree(self._path("containerd", "state"), ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def leftovers(self) -> dict[str, object]:
        """What of the node is still on the machine; all empty after stop()."""
        return {
            "processes": network.pids_inside(self.link) + self._cgroup_pids(),
            "mounts": _mounts_under(self.dir),
            "cgroups": [str(p) for p in self._cgroup_dirs() if p.exists()],
            **{k: v for k, v in network.exists(self.link).items() if v},
        }

    # Files ----------------------------------------------------------------
    def _write_files(self, node_bin: Path, api_port: int) -> None:
        for sub in ("containerd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam", "runc", "pki", "local-path"):
            self._path(sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        server = f"https://{self.link.host_ip}:{api_port}"
        self.cluster.write_kubeconfig(
            self._path("kubelet.kubeconfig"), f"system:node:{NODE_NAME}", ("system:nodes",), server
        )
        self.cluster.write_kubeconfig(self._path("kube-proxy.kubeconfig"), "system:kube-proxy", (), server)
        self.cluster.write_kubeconfig(self._path("kube-router.kubeconfig"), addons.ENFORCER_USER, (), server)
        serving = pki.issue(self.cluster._ca(), NODE_NAME, server_names=(NODE_NAME, self.link.node_ip))
        write_private(self._path("pki", "kubelet.crt"), serving.cert_pem)
        write_private(self._path("pki", "kubelet.key"), serving.key_pem)
        write_private(self._path("containerd.toml"), self._containerd_config(node_bin))
        registry = images.registry_address()
        write_private(
            self._path("containerd", "certs.d", registry, "hosts.toml"),
            # The registry listens on the host's 127.0.0.1, which inside the node's
            # namespace is the node itself: pull through the host end of the link.
            f'server = "http://{registry}"\n\n'
            f'[host."http://{self.link.host_ip}:{registry.rsplit(":", 1)[1]}"]\n'
            '  capabilities = ["pull", "resolve"]\n',
        )
        write_private(self._path("cni", "net.d", "10-vcportal.conflist"), json.dumps(self._cni_config(), indent=2))
        write_private(self._path("resolv.conf"), "# pods resolve cluster names only (CoreDNS)\n")
        write_private(self._path("kubelet.yaml"), yaml.safe_dump(self._kubelet_config()))
        write_private(self._path("kube-proxy.yaml"), yaml.safe_dump(self._proxy_config()))

    def _containerd_config(self, node_bin: Path) -> str:
        cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
        return f"""version = 4
root = "{self._path('containerd', 'root')}"
state = "{self._path('containerd', 'state')}"
# Nothing machine-wide: no /etc/containerd/conf.d, no NRI socket in /var/run/nri.
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri"]

[plugins.'io.containerd.server.v1.grpc']
  address = "{self.containerd_socket}"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "{self.containerd_socket}.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{images.reference('pause')}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{self._path('containerd', 'certs.d')}"

[{cri_runtime}]
  netns_mounts_under_state_dir = true
  # Lowering an OOM score needs CAP_SYS_RESOURCE, which machines like this one's
  # sandbox withhold even from root: keep containers at or above containerd's score.
  restrict_oom_score_adj = true
  [{cri_runtime}.cni]
    bin_dirs = ["{node_bin / 'cni'}"]
    conf_dir = "{self._path('cni', 'net.d')}"
  [{cri_runtime}.containerd]
    default_runtime_name = "runc"
    [{cri_runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri_runtime}.containerd.runtimes.runc.options]
        BinaryName = "{node_bin / 'runc'}"
        Root = "{self._path('runc')}"
        SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  # The streaming server (logs are files; exec, attach, port-forward stream) listens
  # inside the node's namespace, for the kubelet only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    def _cni_config(self) -> dict:
        return {
            "cniVersion": "1.0.0",
            "name": "vcportal",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self._path("cni", "ipam")),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _kubelet_config(self) -> dict:
        pki_dir = self.cluster.pki_dir
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.link.node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki_dir / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(self._path("pki", "kubelet.crt")),
            "tlsPrivateKeyFile": str(self._path("pki", "kubelet.key")),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_name}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "podCIDR": POD_SUBNET,
            "clusterDNS": [CLUSTER_DNS_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(self._path("resolv.conf")),
            "podLogsDir": str(self._path("pod-logs")),
            "staticPodPath": "",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            # A shared development disk is often fuller than a node's: evict only
            # when it is really full, and never garbage-collect images on its account.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }

    def _proxy_config(self) -> dict:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self._path("kube-proxy.kubeconfig"))},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "bindAddress": self.link.node_ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # conntrack limits are machine-wide and not writable from a namespace.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }

    def _argv(self, name: str, node_bin: Path) -> list[str]:
        if name == "containerd":
            return [str(node_bin / "containerd"), f"--config={self._path('containerd.toml')}"]
        if name == "kubelet":
            return [
                str(self.cluster.bin_dir / "kubelet"),
                f"--config={self._path('kubelet.yaml')}",
                f"--kubeconfig={self._path('kubelet.kubeconfig')}",
                f"--root-dir={self._path('kubelet')}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.link.node_ip}",
            ]
        if name == "kube-router":
            # Only its NetworkPolicy firewall (iptables and ipsets inside the node's
            # namespace): kube-proxy serves Services, the CNI bridge routes pods.
            return [
                str(node_bin / "kube-router"),
                f"--kubeconfig={self._path('kube-router.kubeconfig')}",
                "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
                "--enable-cni=false", f"--hostname-override={NODE_NAME}",
                "--health-port=0", "--metrics-port=0", f"--service-cluster-ip-range={SERVICE_CIDR}",
            ]
        return [str(self.cluster.bin_dir / "kube-proxy"), f"--config={self._path('kube-proxy.yaml')}"]

    def _wait(self, component: str, ready, deadline: float) -> None:
        while not ready():
            if self.cluster.processes.exited(component):
                raise ClusterError(self.cluster._failure(component, "exited during start-up"))
            if time.monotonic() > deadline:
                raise ClusterError(self.cluster._failure(component, "was not ready in time"))
            time.sleep(0.2)

    # Cgroups and processes -------------------------------------------------
    def _cgroup_dirs(self) -> list[Path]:
        return [hierarchy / self.cgroup_name for hierarchy in _v1_hierarchies()]

    def _make_cgroups(self) -> None:
        for path in self._cgroup_dirs():
            path.mkdir(exist_ok=True)
            if (path / "cpuset.cpus").exists():
                # A new v1 cpuset starts empty and refuses tasks until given CPUs and memory nodes.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / name).read_text().strip():
                        (path / name).write_text((path.parent / name).read_text())

    def _cgroup_pids(self) -> list[int]:
        pids = set()
        for top in self._cgroup_dirs():
            for procs in top.rglob("cgroup.procs") if top.exists() else ():
                pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def _kill_the_rest(self, timeout: float) -> None:
        """SIGKILL containerd's shims and every container: whatever runs in the node's
        namespace or its cgroups once the kubelet and kube-proxy are gone."""
        deadline = time.monotonic() + timeout
        while pids := {p for p in network.pids_inside(self.link) + self._cgroup_pids() if process_alive(p)}:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of {NODE_NAME} survive SIGKILL: {sorted(pids)}")
            time.sleep(0.1)

    def _remove_cgroups(self) -> None:
        for top in self._cgroup_dirs():
            if top.exists():
                for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    path.rmdir()
                top.rmdir()


def publish_api_endpoint(api, host_ip: str, port: int) -> None:
    """Point the `kubernetes` Service at the API server as the node reaches it: its
    Endpoints and EndpointSlice, as an API server's reconciler writes them (the syncer's
    for a vcluster's, the same objects). This API server keeps none itself (it listens on
    loopback only, which no pod reaches)."""
    (_, endpoints), (_, endpoint_slice) = kubernetes_endpoints((host_ip, port))
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    for replace, create, body in (
        (core.replace_namespaced_endpoints, core.create_namespaced_endpoints, endpoints),
        (discovery.replace_namespaced_endpoint_slice, discovery.create_namespaced_endpoint_slice, endpoint_slice),
    ):
        try:
            replace("kubernetes", "default", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            create("default", body)


def _node_ready(api, name: str) -> bool:
    try:
        node = client.CoreV1Api(api).read_node(name)
    except ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _deployment_available(api, namespace: str, name: str) -> bool:
    try:
        deployment = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    except ApiException:
        return False
    status = deployment.status
    return status.observed_generation == deployment.metadata.generation and bool(status.available_replicas)


def _v1_hierarchies() -> list[Path]:
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            before, _, after = line.partition(" - ")
            if after.split()[0] == "cgroup":
                found.append(Path(before.split()[4]))
    return found


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p.startswith(prefix)]


def _unmount_under(directory: Path) -> None:
    """Detach every mount below `directory`, deepest first (overlay rootfs, shm, pod
    volumes, network namespace files)."""
    for point in sorted(set(_mounts_under(directory)), key=lambda p: -p.count("/")):
        subprocess.run(["umount", "-l", point], capture_output=True)
