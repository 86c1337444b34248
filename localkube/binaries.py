"""Where the Kubernetes binaries built by `make kube` (tools/kube/build.sh) live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "tools" / "kube" / "versions.env"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kine", "kwok")


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


def default_bin_dir() -> Path:
    """The directory build.sh writes to; keep the two formulas in step."""
    v = versions()
    cache = os.environ.get("VCPORTAL_KUBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vcportal", "kube"
    )
    key = f"{v['KUBE_VERSION']}-kine{v['KINE_VERSION']}-kwok{v['KWOK_VERSION']}"
    return Path(cache) / key / "bin"


def bin_dir() -> Path:
    """VCPORTAL_KUBE_BIN_DIR when set, else the build cache; every binary must be there."""
    configured = os.environ.get("VCPORTAL_KUBE_BIN_DIR")
    path = Path(configured) if configured else default_bin_dir()
    missing = [c for c in COMPONENTS if not os.access(path / c, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"Kubernetes binaries missing in {path}: {', '.join(missing)}. Run `make kube`."
        )
    return path


def kube_version() -> str:
    return versions()["KUBE_VERSION"]
