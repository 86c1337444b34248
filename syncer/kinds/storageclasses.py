"""StorageClasses, host → vcluster: a read-only mirror (syncer.kinds.mirror) of the host
classes a tenant's claims may name, so `kubectl get storageclass` and charts asking for
a class work.

Offered are the host's default class (claims without a class get it on the host anyway)
and those the host's tenant policy lists (`storage_classes`). Each is mirrored with the
host's binding mode and expansion setting, marked default when it is the host's default
(the newest such class, as Kubernetes picks), so the vcluster's admission gives
class-less claims its name. Nothing else crosses: no parameters, mount options or
topologies (they describe host storage), and the provisioner is the syncer's volume
driver (syncer.kinds.volumes), which is what provisions for the vcluster: its reclaim
policy is Delete for the same reason as its volumes'.

A tenant may make classes of its own; a claim naming one is refused
(syncer.kinds.pods.safety.check_storage_class).
"""

from __future__ import annotations

import dataclasses

from ..controller import SyncContext
from ..kind import ALL, HOST, OURS, READ, VIRTUAL, Kind, Watch, changed_key
from ..kube import STORAGECLASSES
from ..translate import Target
from .mirror import OfferedClassMirror, every_mirror, newest_default
from .volumes import DRIVER

ANN_DEFAULT = "storageclass.kubernetes.io/is-default-class"


def host_default(classes: list[dict]) -> str | None:
    return newest_default(classes, ANN_DEFAULT)


def with_host_default(ctx: SyncContext, target: Target) -> Target:
    """`target` knowing the host's default class, which claims may always name."""
    return dataclasses.replace(target, default_storage_class=host_default(ctx.hinf[STORAGECLASSES].values()))


class ClassMirror(OfferedClassMirror):
    api_version = "storage.k8s.io/v1"
    default_annotation = ANN_DEFAULT
    immutable = ("provisioner", "reclaimPolicy", "volumeBindingMode")
    mutable = ("allowVolumeExpansion",)

    def listed(self) -> tuple[str, ...]:
        return self.ctx.target.policy.storage_classes

    def body(self, host_class: dict) -> dict:
        return {"provisioner": DRIVER, "reclaimPolicy": "Delete",
                **{k: host_class[k] for k in ("volumeBindingMode", "allowVolumeExpansion") if k in host_class}}


KIND = Kind(
    name="StorageClass", resource=STORAGECLASSES, controller=ClassMirror, to_host=False,
    virtual_objects=OURS, host_objects=ALL, host_verbs=READ, workers=1,
    watches=(Watch(HOST, STORAGECLASSES, every_mirror("StorageClass")), Watch(VIRTUAL, STORAGECLASSES, changed_key)),
)
