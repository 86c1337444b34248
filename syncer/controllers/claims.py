"""PersistentVolumeClaims: every virtual claim has a host claim, which binds to a host volume.

The virtual claim is left Pending: binding it would take a virtual PersistentVolume
mirroring the host one, which is not built yet (see docs/syncer.md). Host events about
the claim (provisioning, binding) are shown on it.
"""

from __future__ import annotations

from .. import translate
from ..kube import PVCS
from .base import Context, Controller

KIND = "PersistentVolumeClaim"


class ClaimController(Controller):
    name = "claims"

    def __init__(self, ctx: Context, workers: int = 2):
        super().__init__(ctx, workers)
        self.virtual = ctx.vinf[PVCS]
        self.hosts = ctx.hinf[PVCS]

    def keys(self):
        prefix = KIND + "/"
        return {*self.virtual.keys(),
                *(v[len(prefix):] for v in self.hosts.index_values("virtual") if v.startswith(prefix))}

    def reconcile(self, key: str) -> None:
        claim = self.virtual.get(key)
        copies = self.host_copies(PVCS, KIND, key)
        if claim is None:
            self.delete_all(PVCS, copies)
            return
        desired = translate.host_pvc(claim, self.ctx.target)
        current = self.pick(PVCS, copies, desired["metadata"]["name"])
        if current is None:
            self.create_host(PVCS, desired, claim, KIND)
            return
        patch = {}
        if translate.marks_differ(desired, current):
            patch["metadata"] = translate.metadata_patch(desired, current)
        wanted = desired["spec"].get("resources", {}).get("requests")
        if wanted and wanted != current["spec"].get("resources", {}).get("requests"):
            patch["spec"] = {"resources": {"requests": wanted}}  # expansion
        if patch:
            self.ctx.host.patch(PVCS, self.ctx.target.namespace, current["metadata"]["name"], patch)
