"""PersistentVolumes, host → vcluster: once a virtual claim's host copy is Bound, a
virtual PersistentVolume bound to the virtual claim, so that it is Bound inside too
(`helm install --wait` and StatefulSets wait for that).

The virtual volume is made from the host *claim*, never from the host volume, which the
syncer cannot even read: its capacity and access modes are the host claim's status, its
class and volume mode the virtual claim's own. What identifies storage on the host (the
volume's name, node paths, CSI handle, node affinity) has no way in. Its source is a CSI
volume of the syncer's own driver (`volumes.vcportal.io`, declared in the vcluster as
needing no attachment, so the vcluster's controllers leave it alone) whose handle is the
virtual claim's uid; it is named `pvc-<claim uid>`, as dynamic provisioners name theirs.

It lives and dies with its claim: deleting the claim in the vcluster deletes the volume
there (reclaim policy Delete, the syncer being its provisioner), whatever the host's
class then does with the host volume. A claim expanded on the host (requests are synced
by the claim's kind) grows the virtual volume and the claim's status capacity.
"""

from __future__ import annotations

import logging

from .. import names
from ..controller import Controller
from ..kind import HOST, OURS, VIRTUAL, Index, Kind, Watch, changed_key
from ..kube import CSIDRIVERS, PVCS, PVS, ApiError
from ..names import LABEL_MANAGED_BY

logger = logging.getLogger(__name__)

DRIVER = "volumes.vcportal.io"
CLAIM_INDEX = "claim"  # on the virtual volume informer: "<namespace>/<name>" of its claim
CLAIM_KIND = "PersistentVolumeClaim"


def volume_name(claim: dict) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def virtual_volume(claim: dict, host_claim: dict, vcluster: str) -> dict:
    meta, spec = claim["metadata"], claim["spec"]
    bound = host_claim.get("status") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "labels": {LABEL_MANAGED_BY: vcluster},
            # The vcluster's volume controller leaves deletion to the provisioner named here.
            "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER},
        },
        "spec": {
            "capacity": {"storage": bound["capacity"]["storage"]},
            "accessModes": bound.get("accessModes") or spec.get("accessModes"),
            "storageClassName": spec.get("storageClassName") or "",
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"apiVersion": "v1", "kind": CLAIM_KIND, "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "csi": {"driver": DRIVER, "volumeHandle": meta["uid"]},
        },
    }


def is_ours(volume: dict, vcluster: str) -> bool:
    """Labelled ours and of our driver: a tenant's own volume is never touched, even if
    labelled like ours."""
    labels = volume["metadata"].get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == vcluster and ((volume.get("spec") or {}).get("csi") or {}).get(
        "driver") == DRIVER


def claim_key(volume: dict) -> list[str]:
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    return [f"{ref['namespace']}/{ref['name']}"] if ref.get("namespace") and ref.get("name") else []


def host_claim_keys(ctx, old: dict | None, new: dict | None) -> list[str]:
    obj = new or old
    if names.is_ours(obj, ctx.vcluster) and names.recorded_kind(obj) == CLAIM_KIND:
        return [names.recorded_key(obj)]
    return []


def volume_claim_keys(ctx, old: dict | None, new: dict | None) -> list[str]:
    return claim_key(new or old)


class VolumeSync(Controller):
    """Keyed by the virtual claim ("namespace/name")."""

    def __init__(self, ctx, kind, workers: int = 2):
        super().__init__(ctx, kind, workers)
        self.claims = ctx.vinf[PVCS]
        self.volumes = ctx.vinf[PVS]
        self._driver_declared = False

    def keys(self):
        return {*self.claims.keys(), *self.volumes.index_values(CLAIM_INDEX)}

    def reconcile(self, key: str) -> None:
        claim = self.claims.get(key)
        ours = [v for v in self.volumes.by_index(CLAIM_INDEX, key) if is_ours(v, self.ctx.vcluster)]
        if claim is None:
            self._delete(ours)
            return
        name = volume_name(claim)
        self._delete(v for v in ours if v["metadata"]["name"] != name)  # of an earlier claim of that name
        host_claim = self._bound_host_claim(key)
        if host_claim is None or claim["spec"].get("volumeName") not in (None, "", name):
            return  # not bound on the host yet, or bound inside to a volume of the tenant's own
        desired = virtual_volume(claim, host_claim, self.ctx.vcluster)
        current = next((v for v in ours if v["metadata"]["name"] == name), None)
        if current is None:
            self._create(desired, claim)
        else:
            self._follow_capacity(desired, current, claim)

    def _bound_host_claim(self, key: str) -> dict | None:
        copies = self.ctx.controllers[CLAIM_KIND].host_copies(key)
        bound = [c for c in copies if (c.get("status") or {}).get("phase") == "Bound"
                 and ((c.get("status") or {}).get("capacity") or {}).get("storage")]
        return bound[0] if bound else None

    def _create(self, desired: dict, claim: dict) -> None:
        self._declare_driver()
        try:
            self.ctx.virtual.create(PVS, None, desired)
        except ApiError as exc:
            if not exc.conflict:
                raise
            existing = self.ctx.virtual.get_or_none(PVS, None, desired["metadata"]["name"])
            if existing is not None and not is_ours(existing, self.ctx.vcluster):
                self.ctx.recorder.warn(claim, CLAIM_KIND, "NameTaken", f"PersistentVolume "
                                       f"{desired['metadata']['name']} exists and is not the syncer's")

    def _follow_capacity(self, desired: dict, current: dict, claim: dict) -> None:
        size = desired["spec"]["capacity"]["storage"]
        if (current["spec"].get("capacity") or {}).get("storage") != size:
            self.ctx.virtual.patch(PVS, None, current["metadata"]["name"], {"spec": {"capacity": {"storage": size}}})
        if ((claim.get("status") or {}).get("capacity") or {}).get("storage") not in (None, size):
            meta = claim["metadata"]
            self.ctx.virtual.patch(PVCS, meta["namespace"], meta["name"], {"status": {"capacity": {"storage": size}}},
                                   sub="status")

    def _delete(self, volumes) -> None:
        for volume in volumes:
            meta = volume["metadata"]
            if not meta.get("deletionTimestamp"):
                logger.info("volumes: deleting virtual PersistentVolume %s", meta["name"])
                self.ctx.virtual.delete(PVS, None, meta["name"], uid=meta.get("uid"))

    def _declare_driver(self) -> None:
        """Our volumes need no attachment: without this the vcluster's attach/detach
        controller would make a VolumeAttachment for each that nothing ever attaches."""
        if self._driver_declared:
            return
        try:
            self.ctx.virtual.create(CSIDRIVERS, None, {
                "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                "metadata": {"name": DRIVER, "labels": {LABEL_MANAGED_BY: self.ctx.vcluster}},
                "spec": {"attachRequired": False, "podInfoOnMount": False},
            })
        except ApiError as exc:
            if not exc.conflict:
                raise
        self._driver_declared = True


KIND = Kind(
    name="PersistentVolume", resource=PVS, controller=VolumeSync, to_host=False,
    virtual_objects=OURS, host_objects=None,
    watches=(Watch(VIRTUAL, PVCS, changed_key), Watch(HOST, PVCS, host_claim_keys),
             Watch(VIRTUAL, PVS, volume_claim_keys)),
    indexes=(Index(VIRTUAL, PVS, CLAIM_INDEX, claim_key),),
)
