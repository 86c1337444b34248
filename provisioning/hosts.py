"""Registering host clusters and choosing one for a new vcluster."""

from __future__ import annotations

import yaml
from django.db.models import Q
from django.utils.text import slugify

from .hostkube import HostKube, HostUnreachable
from .models import HostCluster


class HostClusterError(ValueError):
    """Bad input for a host cluster; the message says what to fix."""


def check_kubeconfig(text: str) -> None:
    """Raise HostClusterError unless `text` is a kubeconfig whose cluster answers."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise HostClusterError("kubeconfig is not valid YAML") from None
    if not isinstance(doc, dict) or not all(doc.get(k) for k in ("clusters", "users", "current-context")):
        raise HostClusterError("kubeconfig needs clusters, users and a current-context")
    try:
        HostKube(text).version()
    except HostUnreachable as exc:
        raise HostClusterError(f"cannot reach the host cluster: {exc}") from None


def register(name: str, kubeconfig: str, *, enabled: bool | None = None) -> tuple[HostCluster, bool]:
    """Add a host cluster, or replace the kubeconfig of one; `enabled` None keeps an
    existing host's state (a new one starts enabled)."""
    if slugify(name) != name:
        raise HostClusterError("name must be a slug: lowercase letters, digits and '-'")
    check_kubeconfig(kubeconfig)
    defaults = {"kubeconfig": kubeconfig}
    if enabled is not None:
        defaults["enabled"] = enabled
    return HostCluster.objects.update_or_create(name=name, defaults=defaults)


class NoHostCluster(RuntimeError):
    pass


def choose_for(team) -> HostCluster:
    """The least loaded enabled host cluster this team may use."""
    candidates = (
        HostCluster.objects.filter(enabled=True)
        .filter(Q(teams=None) | Q(teams=team))
        .distinct()
        .with_load()
        .order_by("load", "name")
    )
    host = candidates.first()
    if host is None:
        raise NoHostCluster(
            f"No enabled host cluster is open to team {team}; a platform admin must register or enable one."
        )
    return host
