"""Checking a host cluster's kubeconfig and choosing a host cluster for a new vcluster.
Registering one is the services' job (audited, with its safety checks)."""

from __future__ import annotations

from django.db.models import Q

from portal import yamlinput

from ..hostkube import HostKube, HostUnreachable
from ..models import HostCluster


class HostClusterError(ValueError):
    """Bad input for a host cluster; the message says what to fix."""


def check_kubeconfig(text: str) -> None:
    """Raise HostClusterError unless `text` is a kubeconfig whose cluster answers."""
    try:
        doc = yamlinput.load(text)
    except yamlinput.NotYAML:
        raise HostClusterError("kubeconfig is not valid YAML") from None
    if not isinstance(doc, dict) or not all(doc.get(k) for k in ("clusters", "users", "current-context")):
        raise HostClusterError("kubeconfig needs clusters, users and a current-context")
    try:
        HostKube(text, retries=0).version()
    except HostUnreachable as exc:
        raise HostClusterError(f"cannot reach the host cluster: {exc}") from None


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
