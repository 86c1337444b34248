"""Where a vcluster's control plane and syncer run: one protocol, one registry.

Each host cluster names a runtime, and each placement keeps the one it was made with.
The models' choices, the services' validation and the forms' and API's choices derive
from REGISTRY. A runtime talks to its host (or its own processes) and keeps what must
outlive them in the StateStore the pipeline hands it: it never touches the portal's
database.

- `kubernetes` (runtimes.kubernetes, objects in runtimes.kubeobjects): a StatefulSet in
  the vcluster's host namespace; production's runtime, and `make run`'s.
- `local` (runtimes.local): processes on the worker's machine, for development and for
  tests on hosts whose nodes are all kwok's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import ControlPlaneRuntime, RuntimeFailure, RuntimeNotReady, StateStore, VClusterRef, syncer_name
from .kubernetes import KubernetesRuntime
from .local import LocalProcessRuntime

__all__ = ["ControlPlaneRuntime", "RuntimeFailure", "RuntimeNotReady", "StateStore", "VClusterRef", "syncer_name",
           "REGISTRY", "CHOICES", "DEFAULT", "LOCAL", "create"]


@dataclass(frozen=True)
class Entry:
    label: str
    runtime: type
    # Tenants reach its API server through a host Service, so the host cluster's access
    # mode and address apply (and are checked).
    uses_access: bool


REGISTRY: dict[str, Entry] = {
    KubernetesRuntime.name: Entry("Pods in the host cluster", KubernetesRuntime, uses_access=True),
    LocalProcessRuntime.name: Entry("Processes on the worker (development)", LocalProcessRuntime, uses_access=False),
}
CHOICES = [(name, entry.label) for name, entry in REGISTRY.items()]
DEFAULT = KubernetesRuntime.name
LOCAL = LocalProcessRuntime.name


def create(name: str, host, store: StateStore) -> ControlPlaneRuntime:
    """The runtime `name` on `host` (a HostCluster), keeping its state in `store`."""
    if name not in REGISTRY:
        raise RuntimeFailure(f"unknown control plane runtime {name!r}")
    return REGISTRY[name].runtime(host, store)
