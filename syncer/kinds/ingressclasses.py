"""IngressClasses, host → vcluster: a read-only mirror (syncer.kinds.mirror) of the host
classes a tenant's Ingresses may name, so `kubectl get ingressclass` and charts asking
for a class work.

Offered are the host's default class (Ingresses without a class get it on the host) and
those the host's tenant policy lists (`ingress_classes`), each with its controller name
and marked default when it is the host's default; never its parameters (they describe
the host's controller). An Ingress naming any other class is not synced
(syncer.kinds.ingresses): a controller the tenant runs inside its vcluster serves it.
"""

from __future__ import annotations

from ..kind import ALL, HOST, OURS, READ, VIRTUAL, Kind, Watch, changed_key
from ..kube import INGRESSCLASSES
from ..translate import Target
from .mirror import OfferedClassMirror, every_mirror, offered_classes

ANN_DEFAULT = "ingressclass.kubernetes.io/is-default-class"


def offered(classes: list[dict], target: Target) -> set[str]:
    """Names of the host classes the tenant's Ingresses may name."""
    return offered_classes(classes, ANN_DEFAULT, target.policy.ingress_classes)


class IngressClassMirror(OfferedClassMirror):
    api_version = "networking.k8s.io/v1"
    default_annotation = ANN_DEFAULT
    immutable = ("spec",)  # only the controller's name, which the API never lets change

    def listed(self) -> tuple[str, ...]:
        return self.ctx.target.policy.ingress_classes

    def body(self, host_class: dict) -> dict:
        return {"spec": {"controller": (host_class.get("spec") or {}).get("controller", "")}}


KIND = Kind(
    name="IngressClass", resource=INGRESSCLASSES, controller=IngressClassMirror, to_host=False,
    virtual_objects=OURS, host_objects=ALL, host_verbs=READ, workers=1,
    watches=(Watch(HOST, INGRESSCLASSES, every_mirror("IngressClass")), Watch(VIRTUAL, INGRESSCLASSES, changed_key)),
)
