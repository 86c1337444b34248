"""The registry: every kind the syncer handles, one module (or package) each.

The runner builds informers, indexes and routing from this list, and syncer.rbac the
host permissions. To add a kind, write its module with a `KIND` and list it here.
"""

from __future__ import annotations

from ..kind import Kind
from . import (configmaps, endpoints, events, ingressclasses, ingresses, networkpolicies, nodes, pdbs, pods,
               priorityclasses, pvcs, secrets, services, storageclasses, volumes)

REGISTRY: tuple[Kind, ...] = (
    pods.KIND, services.KIND, endpoints.KIND, configmaps.KIND, secrets.KIND, pvcs.KIND, volumes.KIND,
    storageclasses.KIND, pdbs.KIND, priorityclasses.KIND, ingresses.KIND, ingressclasses.KIND, networkpolicies.KIND,
    nodes.KIND, events.KIND,
)
