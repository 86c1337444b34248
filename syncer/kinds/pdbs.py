"""PodDisruptionBudgets, vcluster → host: every budget, so that a host drain (the
eviction API) respects what the tenant asked for its pods.

The host copy's selector is the tenant's, narrowed to the host pods of its own virtual
namespace of this vcluster: an empty selector, or one naming the syncer's labels, can
never reach another namespace's or another tenant's pods in the host namespace. Its
status stays the vcluster's own (its disruption controller counts the virtual pods,
whose readiness comes from the host).

A budget that allows no disruption holds a host drain up, as it would on any cluster:
the operator of the host drains such a node with `kubectl drain --disable-eviction`
(docs/syncer.md).
"""

from __future__ import annotations

import copy

from ..controller import HostSync
from ..kind import Kind
from ..kube import PDBS
from ..translate import Target, host_object, marks_patch, scope_selector

BUDGET = ("minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy")


def host_pdb(budget: dict, target: Target) -> dict:
    spec = budget.get("spec") or {}
    host_spec = {k: spec[k] for k in BUDGET if k in spec}
    selector = spec.get("selector")
    if selector is not None:  # a missing selector selects no pod, here as on the host
        host_spec["selector"] = copy.deepcopy(selector)
        scope_selector(host_spec["selector"], budget["metadata"]["namespace"], target.vcluster)
    return host_object("PodDisruptionBudget", budget, target, apiVersion="policy/v1", spec=host_spec)


class BudgetSync(HostSync):
    def to_host(self, virtual: dict) -> dict:
        return host_pdb(virtual, self.ctx.target)

    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        want, have = desired["spec"], current.get("spec") or {}
        changed = {k: want.get(k) for k in (*BUDGET, "selector") if want.get(k) != have.get(k)}
        if changed:
            patch["spec"] = changed
        return patch or None


KIND = Kind(name="PodDisruptionBudget", resource=PDBS, controller=BudgetSync)
