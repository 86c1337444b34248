"""A vcluster's context in a kubeconfig file, next to whatever else the file holds.

The portal hands out a kubeconfig with one cluster, one user and one context. vcp
renames all three to one name, `vcp_<team>_<vcluster>` (team slugs and vcluster names
never contain `_`, so two vclusters never share it), replaces entries of that name
and leaves every other entry as it was.
"""

import os
from pathlib import Path

import yaml

from .config import write_private


def context_name(team: str, vcluster: str) -> str:
    return f"vcp_{team}_{vcluster}"


def default_path(environ=os.environ) -> Path:
    """The file kubectl reads first: the first of $KUBECONFIG, else ~/.kube/config."""
    first = environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def renamed(kubeconfig: dict, name: str) -> dict:
    """The portal's single-context kubeconfig with its cluster, user and context called `name`."""
    (cluster,), (user,), (context,) = kubeconfig["clusters"], kubeconfig["users"], kubeconfig["contexts"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster["cluster"]}],
        "users": [{"name": name, "user": user["user"]}],
        "contexts": [{"name": name, "context": {**context["context"], "cluster": name, "user": name}}],
        "current-context": name,
    }


def with_exec_credential(kubeconfig: dict, team: str, vcluster: str) -> dict:
    """`kubeconfig` (renamed()) with its user's fixed token replaced by `vcp token`, a
    kubectl exec credential plugin that fetches fresh tokens as they expire."""
    (user,) = kubeconfig["users"]
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "vcp",
        "args": ["token", vcluster, "--team", team],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    return {**kubeconfig, "users": [{"name": user["name"], "user": {"exec": plugin}}]}


def merged(existing: dict | None, addition: dict) -> dict:
    """`existing` with `addition`'s entries put in (same names replaced), switched to its context."""
    result = dict(existing or {"apiVersion": "v1", "kind": "Config", "preferences": {}})
    for section in ("clusters", "users", "contexts"):
        new = {entry["name"]: entry for entry in addition[section]}
        kept = [entry for entry in result.get(section) or [] if entry.get("name") not in new]
        result[section] = kept + list(new.values())
    result["current-context"] = addition["current-context"]
    return result


def read(path: Path) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path} is not a kubeconfig")
    return data


def write(path: Path, kubeconfig: dict) -> None:
    write_private(path, dump(kubeconfig))


def dump(kubeconfig: dict) -> str:
    return yaml.safe_dump(kubeconfig, sort_keys=False)
