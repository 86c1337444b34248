"""PersistentVolumeClaims, vcluster → host: every virtual claim has a host claim, which
binds to a host volume. Once it has, syncer.kinds.volumes binds the virtual claim to a
virtual volume made from it. Host events about the claim (provisioning, binding) are
shown on it.
"""

from __future__ import annotations

from ..controller import HostSync
from ..kind import Kind
from ..kube import PVCS
from ..translate import Target, host_object, marks_patch
from .pods.safety import claim_spec
from .storageclasses import with_host_default


def host_pvc(claim: dict, target: Target) -> dict:
    """Claims bind to host volumes: a virtual volumeName or selector means nothing there."""
    spec = claim_spec(claim["spec"], claim["metadata"]["namespace"], target)
    return host_object("PersistentVolumeClaim", claim, target, spec=spec)


class ClaimSync(HostSync):
    def to_host(self, virtual: dict) -> dict:
        return host_pvc(virtual, with_host_default(self.ctx, self.ctx.target))

    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        wanted = desired["spec"].get("resources", {}).get("requests")
        if wanted and wanted != current["spec"].get("resources", {}).get("requests"):
            patch["spec"] = {"resources": {"requests": wanted}}  # expansion
        return patch or None


KIND = Kind(name="PersistentVolumeClaim", resource=PVCS, controller=ClaimSync)
