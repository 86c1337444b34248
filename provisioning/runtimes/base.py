"""What the pipeline asks of a runtime, and what it hands one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings

from controlplane import images
from syncer.policy import TenantPolicy


class RuntimeFailure(RuntimeError):
    """A permanent runtime failure; the message is shown to the user."""


class RuntimeNotReady(RuntimeError):
    """Not there yet (a pod starting, a volume being deleted): worth retrying later."""


@dataclass(frozen=True)
class VClusterRef:
    id: int
    name: str
    host_namespace: str
    kubernetes_version: str
    # The ownership marks of the vcluster's host objects (manifests.labels).
    labels: dict[str, str] = field(default_factory=dict, compare=False)


class StateStore(Protocol):
    """Where a runtime keeps what must outlive its processes and host objects (keys, an
    address): the pipeline hands each runtime the vcluster's, kept by the portal,
    encrypted. A runtime never reads or writes the portal's database itself."""

    def load(self) -> dict:
        """The state last saved; {} if none."""

    def save(self, state: dict) -> None: ...

    def clear(self) -> bool:
        """Forget the state; whether there was any."""


class ControlPlaneRuntime(Protocol):
    name: str

    def quota_share(self) -> dict[str, int]:
        """What the control plane takes of the host namespace's quota, in
        manifests.SHARE_KEYS terms (the quota is raised by that much)."""

    def ensure_control_plane(self, vc: VClusterRef, policy: TenantPolicy) -> list[str]:
        """Start the control plane unless it runs, and wait until it serves; returns
        what it had to start, create or change (empty: nothing). `policy` is the one
        ensure_syncer gets, for a runtime whose syncer starts with its control plane."""

    def server(self, vc: VClusterRef) -> str:
        """The vcluster API server's URL as tenants reach it."""

    def admin_kubeconfig(self, vc: VClusterRef) -> str:
        """A kubeconfig with cluster-admin rights, naming server(vc)."""

    def pod_api_endpoint(self, vc: VClusterRef) -> tuple[str, int]:
        """The address and port at which the vcluster's pods (on the host's nodes) reach
        its API server: what `kubernetes.default` means inside the vcluster."""

    def ensure_syncer(self, vc: VClusterRef, host_kubeconfig: Callable[[], str], policy: TenantPolicy) -> list[str]:
        """Start the syncer unless it runs with this `policy`, with host credentials
        from `host_kubeconfig()` where the runtime needs them; returns what it had to
        (re)start or change."""

    def syncer_running(self, vc: VClusterRef) -> bool:
        """True once the syncer is ready: it has listed both clusters and syncs."""

    def destroy(self, vc: VClusterRef) -> list[str]:
        """Stop everything and remove all state; returns what was removed."""


def hosts_image() -> str:
    """The image the syncer writes pods' /etc/hosts with (VCPORTAL_HOSTS_IMAGE)."""
    try:
        return settings.VCPORTAL_HOSTS_IMAGE or images.reference("busybox")
    except images.ImagesMissing as exc:
        raise RuntimeFailure(f"{exc} Or set VCPORTAL_HOSTS_IMAGE to an image with sh and sed the host can pull.") \
            from None


def syncer_name(vc: VClusterRef) -> str:
    """The syncer's suffix for host object names: short and unique per vcluster."""
    return f"vc{vc.id}"
