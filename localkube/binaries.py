"""Where the Kubernetes binaries built by `make kube` (tools/kube/build.sh) live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "tools" / "kube" / "versions.env"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kine", "kwok")
# What a real node runs, from the control plane's directory and from node_bin_dir().
NODE_COMPONENTS = ("kubelet", "kube-proxy")
NODE_RUNTIME = (
    "containerd", "containerd-shim-runc-v2", "runc", "coredns", "kube-router",
    "cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap",
)


class BinariesMissing(RuntimeError):
    pass


def versions() -> dict[str, str]:
    values = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _cache_root() -> Path:
    return Path(os.environ.get("VCPORTAL_KUBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vcportal", "kube"
    ))


def default_bin_dir() -> Path:
    """The directory build.sh writes to; keep the two formulas in step."""
    v = versions()
    key = f"{v['KUBE_VERSION']}-kine{v['KINE_VERSION']}-kwok{v['KWOK_VERSION']}"
    return _cache_root() / key / "bin"


def node_bin_dir() -> Path:
    """Where build.sh puts the real-node runtime (`build.sh node` prints it); every
    binary must be there."""
    v = versions()
    key = (
        f"node-containerd{v['CONTAINERD_VERSION']}-runc{v['RUNC_VERSION']}"
        f"-cni{v['CNI_PLUGINS_VERSION']}-coredns{v['COREDNS_VERSION']}"
        f"-kube-router{v['KUBE_ROUTER_VERSION']}-registry{v['REGISTRY_VERSION']}"
    )
    return require(_cache_root() / key / "bin", NODE_RUNTIME)


def bin_dir() -> Path:
    """VCPORTAL_KUBE_BIN_DIR when set, else the build cache; every binary must be there."""
    configured = os.environ.get("VCPORTAL_KUBE_BIN_DIR")
    return require(Path(configured) if configured else default_bin_dir(), COMPONENTS)


def helm() -> Path:
    """helm, which `make kube` (build.sh all) links into the binary directory."""
    return require(bin_dir(), ("helm",)) / "helm"


def require(path: Path, names: tuple[str, ...]) -> Path:
    missing = [c for c in names if not os.access(path / c, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"Kubernetes binaries missing in {path}: {', '.join(missing)}. Run `make kube`."
        )
    return path


def kube_version() -> str:
    return versions()["KUBE_VERSION"]
