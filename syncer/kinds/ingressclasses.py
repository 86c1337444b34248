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
from .mirror import HostMirror, every_mirror, newest_default

ANN_DEFAULT = "ingressclass.kubernetes.io/is-default-class"


def host_default(classes: list[dict]) -> str | None:
    return newest_default(classes, ANN_DEFAULT)


class IngressClassMirror(HostMirror):
    immutable = ("spec",)  # only the controller's name, which the API never lets change

    def mirror(self, host_class: dict) -> dict | None:
        name = host_class["metadata"]["name"]
        default = host_default(self.host.values())
        if name != default and name not in self.ctx.target.policy.ingress_classes:
            return None
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": name, "labels": self.labels(),
                         "annotations": {ANN_DEFAULT: "true" if name == default else "false"}},
            "spec": {"controller": (host_class.get("spec") or {}).get("controller", "")},
        }


KIND = Kind(
    name="IngressClass", resource=INGRESSCLASSES, controller=IngressClassMirror, to_host=False,
    virtual_objects=OURS, host_objects=ALL, host_verbs=READ, workers=1,
    watches=(Watch(HOST, INGRESSCLASSES, every_mirror("IngressClass")), Watch(VIRTUAL, INGRESSCLASSES, changed_key)),
)
