"""Pods, vcluster → host, with their tokens, their binding to a node and their status.

`translate` holds the pure rules, `safety` what a pod may ask of the host, `controller`
the reconcile. A pod that waited for a configmap, secret or claim is looked at again
when it appears; a namespace's pods when one of its NetworkPolicies changes (which may
isolate them: syncer.kinds.networkpolicies). The host pods' log, exec, attach and
portforward subresources serve the vcluster's kubelet API (syncer.kubelet); their
ephemeralcontainers subresource takes the tenant's `kubectl debug` containers, and their
resize subresource its in-place resizes.
"""

from __future__ import annotations

from ... import names
from ...informer import key_of
from ...kind import VIRTUAL, Index, Kind, Watch
from ...kube import CONFIGMAPS, NETWORKPOLICIES, PODS, PVCS, SECRETS
from .controller import PodController
from .translate import CONFIGMAP, PVC, SECRET, pod_refs

# Indexes on the virtual pod informer: "<namespace>/<name>" of what pods refer to.
REF_INDEXES = {CONFIGMAP: "configmaps", SECRET: "secrets", PVC: "pvcs"}


def _ref_index(kind: str):
    def values(pod: dict) -> list[str]:
        namespace = pod["metadata"]["namespace"]
        return [f"{namespace}/{name}" for name in pod_refs(pod).of(kind)]
    return values


def _waiting_pods(index: str):
    def keys(ctx, old: dict | None, new: dict | None) -> list[str]:
        if old is not None:  # only a new object can unblock a pod
            return []
        return [key_of(pod) for pod in ctx.vinf[PODS].by_index(index, key_of(new))]
    return keys


def _in_policy_namespace(ctx, old: dict | None, new: dict | None) -> list[str]:
    """A policy added, changed or gone may isolate its namespace's pods or free them."""
    namespace = (new or old)["metadata"]["namespace"]
    return [key_of(pod) for pod in ctx.vinf[PODS].values() if pod["metadata"]["namespace"] == namespace]


KIND = Kind(
    name="Pod",
    resource=PODS,
    controller=PodController,
    also_records=(names.TOKEN_KIND,),
    watches=(*(Watch(VIRTUAL, resource, _waiting_pods(REF_INDEXES[kind]))
               for resource, kind in ((CONFIGMAPS, CONFIGMAP), (SECRETS, SECRET), (PVCS, PVC))),
             Watch(VIRTUAL, NETWORKPOLICIES, _in_policy_namespace)),
    indexes=tuple(Index(VIRTUAL, PODS, index, _ref_index(kind)) for kind, index in REF_INDEXES.items()),
    # get: a WebSocket upgrade is a GET (syncer.egress, and exec/attach with the protocols
    # before v5.channel.k8s.io, which the API server hands to the kubelet), SPDY a POST.
    host_subresources=(("log", ("get",)), ("exec", ("create", "get")), ("attach", ("create", "get")),
                       ("portforward", ("create", "get")), ("ephemeralcontainers", ("patch",)),
                       ("resize", ("patch",))),
    workers=None,
)
