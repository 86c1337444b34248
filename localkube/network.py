"""The network of a real node: a network namespace of its own, joined to the host by a veth pair.

A real node lives in its own network namespace (`ip netns` name `vcp-<id>`), as a kind
node lives in its container. Its containerd, kubelet, kube-proxy and policy enforcer
run inside it, so the pod bridge, the routes, the iptables/nftables rules and the
kubelet's ports are all the node's own: two clusters on one machine cannot collide
there, and deleting the namespace removes every one of them.

The namespace reaches the host through a veth pair on a /30 of LINK_RANGE: `vcp<id>`
on the host, `eth0` (the node's InternalIP) inside. The control plane and the image
registry listen on 127.0.0.1 only; a nat chain on the host, `VCP-<id>`, forwards what
the node sends to the host end of the link on exactly those ports to 127.0.0.1
(route_localnet on that interface only), and a filter chain of the same name drops
every other new connection from the node, so pods reach no other service of the
machine. Pods leave the node masqueraded to its address (the CNI bridge's ipMasq), so
the host never sees pod addresses and needs no route to them. `<id>` is derived from
the cluster's state directory.

Services of this machine meant for pods (the API servers of vclusters run by the
local runtime) are *published*: a service on 127.0.0.1:<port> gets an address of its
own, PUBLISHED_RANGE's network address + <port> (unique because the port is), which
every node routes to its host end, where the node's chain DNATs <address>:443 to
127.0.0.1:<port>. So a vcluster's pods reach its API server on 443 as in any cluster
(`https://kubernetes.default.svc` works), the certificate can name the address, and
which pods may use it is the NetworkPolicies' business (provisioning allows each
vcluster its own API server only). Published ports are recorded in PUBLISHED_DIR, so a
node that starts later, or restarts, forwards them too; /run is emptied at boot, as
the rules are.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOOKS = {"nat": "PREROUTING", "filter": "INPUT"}  # where the host's two chains hang
LINK_RANGE = ipaddress.ip_network("10.99.0.0/16")
PUBLISHED_RANGE = ipaddress.ip_network("10.98.0.0/16")  # one address per local port
PUBLISHED_PORT = 443
PUBLISHED_DIR = Path("/run/vcportal/published-ports")
NODE_INTERFACE = "eth0"
_CLONE_NEWNET = 0x40000000


class NetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeLink:
    """The names and addresses of one node's link to the host."""

    cluster_id: str
    index: int  # which /30 of LINK_RANGE

    @property
    def netns(self) -> str:
        return f"vcp-{self.cluster_id}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_interface(self) -> str:
        return f"vcp{self.cluster_id}"

    @property
    def chain(self) -> str:
        return f"VCP-{self.cluster_id}"

    @property
    def _subnet(self) -> ipaddress.IPv4Network:
        return list(LINK_RANGE.subnets(new_prefix=30))[self.index]

    @property
    def host_ip(self) -> str:
        return str(self._subnet.network_address + 1)

    @property
    def node_ip(self) -> str:
        return str(self._subnet.network_address + 2)


def cluster_id(state_dir: Path) -> str:
    return hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]


def allocate_link(state_dir: Path) -> NodeLink:
    """A link whose /30 no interface on the host uses yet, starting from a slot derived
    from the state directory so that clusters rarely even probe the same one."""
    cid = cluster_id(state_dir)
    slots = LINK_RANGE.num_addresses // 4
    used = _used_addresses()
    start = int(cid, 16) % slots
    for offset in range(slots):
        link = NodeLink(cid, (start + offset) % slots)
        if link.host_ip not in used and link.node_ip not in used:
            return link
    raise NetworkError(f"no free /30 left in {LINK_RANGE}")


def create(link: NodeLink, forwarded_ports: list[int], service_cidr: str) -> None:
    """The namespace, the veth pair with its addresses, and the host's chains.
    Idempotent: what exists is left as it is."""
    if not link.netns_path.exists():
        _run("ip", "netns", "add", link.netns)
    if not _host_link_exists(link):
        _run("ip", "link", "add", link.host_interface, "type", "veth",
             "peer", "name", NODE_INTERFACE, "netns", link.netns)
        _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_interface)
        _run("ip", "-n", link.netns, "addr", "add", f"{link.node_ip}/30", "dev", NODE_INTERFACE)
    _run("sysctl", "-qw", f"net.ipv4.conf.{link.host_interface}.route_localnet=1")
    _run("ip", "link", "set", link.host_interface, "up")
    for interface in ("lo", NODE_INTERFACE):
        _run("ip", "-n", link.netns, "link", "set", interface, "up")
    # Inside the node: forward between the pod bridge and eth0, and let iptables see
    # bridged traffic so that Service DNAT works between pods on the same bridge.
    _run("ip", "netns", "exec", link.netns, "sysctl", "-qw",
         "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
    _run("ip", "-n", link.netns, "route", "replace", str(PUBLISHED_RANGE), "via", link.host_ip)
    # The node has no default route; a process on its network (a hostNetwork pod such as
    # metrics-server) needs a route to the Service range before kube-proxy's rules can
    # rewrite the address, as a node's default route would give it.
    _run("ip", "-n", link.netns, "route", "replace", service_cidr, "via", link.host_ip)
    _write_chains(link, forwarded_ports)


def published_address(port: int) -> str:
    return str(PUBLISHED_RANGE.network_address + port)


def keep_from_pods(link: NodeLink, pod_subnet: str, ports: list[int]) -> None:
    """Forward `ports` of the host end to the node's own processes only, never to its
    pods: the registry takes pushes from anyone who reaches it, and only containerd
    needs to pull. A rule of the node's own (it goes with the namespace), in mangle's
    PREROUTING: the filter table's FORWARD chain is kube-router's and kube-proxy's, whose
    jumps come first and accept policy-compliant traffic before a rule of ours would
    see it. Idempotent."""
    for port in ports:
        rule = ("PREROUTING", "-s", pod_subnet, "-d", link.host_ip, "-p", "tcp", "--dport", str(port), "-j", "DROP")
        iptables = ("ip", "netns", "exec", link.netns, "iptables", "-w", "-t", "mangle")
        if _run(*iptables, "-C", *rule, check=False).returncode != 0:
            _run(*iptables, "-I", *rule)


def publish(port: int) -> None:
    """Let every real node on this machine, now and started later, reach
    127.0.0.1:`port` at published_address(`port`):PUBLISHED_PORT. Idempotent. Only root runs nodes: for
    anyone else there is nobody to publish to, and this does nothing."""
    if os.geteuid() != 0:
        return
    PUBLISHED_DIR.mkdir(parents=True, exist_ok=True)
    (PUBLISHED_DIR / str(port)).touch()
    for chain in _node_chains():
        if _iptables("nat", "-C", chain, *_published_rule(port), check=False).returncode != 0:
            _iptables("nat", "-A", chain, *_published_rule(port))


def unpublish(port: int) -> None:
    if os.geteuid() != 0:
        return
    (PUBLISHED_DIR / str(port)).unlink(missing_ok=True)
    for chain in _node_chains():
        _iptables("nat", "-D", chain, *_published_rule(port), check=False)


def published_ports() -> list[int]:
    if not PUBLISHED_DIR.is_dir():
        return []
    return sorted(int(entry.name) for entry in PUBLISHED_DIR.iterdir() if entry.name.isdigit())


def _published_rule(port: int) -> tuple[str, ...]:
    return ("-p", "tcp", "-d", published_address(port), "--dport", str(PUBLISHED_PORT),
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")


def _node_chains() -> list[str]:
    listing = _iptables("nat", "-S", check=False).stdout.splitlines()
    return [line.split()[1] for line in listing if line.startswith("-N VCP-")]


def delete(link: NodeLink) -> None:
    """Remove the host's chains, the veth pair and the namespace (with whatever the
    node left in it: bridge, pod veths, rules). Call once no process runs inside."""
    for table, hook in HOOKS.items():
        _iptables(table, "-D", hook, "-i", link.host_interface, "-j", link.chain, check=False)
        _iptables(table, "-F", link.chain, check=False)
        _iptables(table, "-X", link.chain, check=False)
    if _host_link_exists(link):
        _run("ip", "link", "del", link.host_interface)
    if link.netns_path.exists():
        _run("ip", "netns", "del", link.netns)


def exists(link: NodeLink) -> dict[str, bool]:
    """What of the link is on the machine now: for checks that stop left nothing."""
    return {
        "netns": link.netns_path.exists(),
        "interface": _host_link_exists(link),
        **{
            f"{table} chain": f"-N {link.chain}" in _iptables(table, "-S", check=False).stdout.splitlines()
            for table in HOOKS
        },
    }


@contextmanager
def entered(link: NodeLink) -> Iterator[None]:
    """Run the block with this thread in the node's namespace; processes started in
    it are born there. Only the calling thread moves, and it always moves back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(link.netns_path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def pids_inside(link: NodeLink) -> list[int]:
    """Every process whose network namespace is the node's."""
    try:
        inode = os.stat(link.netns_path).st_ino
    except FileNotFoundError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _write_chains(link: NodeLink, ports: list[int]) -> None:
    for table in HOOKS:
        _iptables(table, "-N", link.chain, check=False)
        _iptables(table, "-F", link.chain)
    for port in ports:
        _iptables("nat", "-A", link.chain, "-p", "tcp", "-d", link.host_ip, "--dport", str(port),
                  "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")
    for port in published_ports():
        _iptables("nat", "-A", link.chain, *_published_rule(port))
    for rule in (
        ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"),
        ("-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"),  # the forwarded ports
        ("-j", "DROP"),
    ):
        _iptables("filter", "-A", link.chain, *rule)
    for table, hook in HOOKS.items():
        rule = (hook, "-i", link.host_interface, "-j", link.chain)
        if _iptables(table, "-C", *rule, check=False).returncode != 0:
            _iptables(table, "-I", *rule)


def _iptables(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run("iptables", "-w", "-t", table, *args, check=check)


def _host_link_exists(link: NodeLink) -> bool:
    return Path("/sys/class/net", link.host_interface).exists()


def _used_addresses() -> set[str]:
    out = _run("ip", "-4", "-o", "addr", "show").stdout
    return {field.split("/")[0] for line in out.splitlines() for field in line.split()[3:4]}


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetworkError(f"setns: {os.strerror(errno)}")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result
