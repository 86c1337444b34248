"""Pods, vcluster → host, with their tokens, their binding to a node and their status.

`translate` holds the pure rules, `safety` what a pod may ask of the host, `controller`
the reconcile. A pod that waited for a configmap, secret or claim is looked at again
when it appears; a namespace's pods when one of its NetworkPolicies changes (which may
isolate them: syncer.kinds.networkpolicies); the pods projecting a ClusterTrustBundle
when it changes (`trustbundles`); a pod when a signer answers its PodCertificateRequest
(`podcertificates`). The host pods' log, exec, attach and
portforward subresources serve the vcluster's kubelet API (syncer.kubelet); their
ephemeralcontainers subresource takes the tenant's `kubectl debug` containers, and their
resize subresource its in-place resizes.
"""

from __future__ import annotations

from ... import names
from ...informer import key_of
from ...kind import VIRTUAL, Index, Kind, Watch
from ...kube import CLUSTERTRUSTBUNDLES, CONFIGMAPS, NETWORKPOLICIES, PODCERTIFICATEREQUESTS, PODS, PVCS, SECRETS
from . import trustbundles
from .controller import PodController
from .translate import CONFIGMAP, PVC, SECRET, pod_refs

# Indexes on the virtual pod informer: "<namespace>/<name>" of what pods refer to.
REF_INDEXES = {CONFIGMAP: "configmaps", SECRET: "secrets", PVC: "pvcs"}
# On the same informer: the trust bundles pods project, by name and by signer name.
TRUST_BUNDLE_INDEX = "trustbundles"


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


def _projecting_pods(ctx, old: dict | None, new: dict | None) -> list[str]:
    """A bundle added, changed or gone changes what the pods naming it or its signer
    (before or after a relabel) mount."""
    values = {value for bundle in (old, new) if bundle is not None for value in trustbundles.keys_for(bundle)}
    return sorted({key_of(pod) for value in values for pod in ctx.vinf[PODS].by_index(TRUST_BUNDLE_INDEX, value)})


def _requesting_pod(ctx, old: dict | None, new: dict | None) -> list[str]:
    request = new or old
    return [f"{request['metadata']['namespace']}/{request['spec']['podName']}"]


KIND = Kind(
    name="Pod",
    resource=PODS,
    controller=PodController,
    also_records=(names.TOKEN_KIND, names.TRUST_BUNDLES_KIND, names.CERTIFICATES_KIND),
    watches=(*(Watch(VIRTUAL, resource, _waiting_pods(REF_INDEXES[kind]))
               for resource, kind in ((CONFIGMAPS, CONFIGMAP), (SECRETS, SECRET), (PVCS, PVC))),
             Watch(VIRTUAL, NETWORKPOLICIES, _in_policy_namespace),
             Watch(VIRTUAL, CLUSTERTRUSTBUNDLES, _projecting_pods),
             Watch(VIRTUAL, PODCERTIFICATEREQUESTS, _requesting_pod)),
    indexes=(*(Index(VIRTUAL, PODS, index, _ref_index(kind)) for kind, index in REF_INDEXES.items()),
             Index(VIRTUAL, PODS, TRUST_BUNDLE_INDEX, trustbundles.referenced)),
    # get: a WebSocket upgrade is a GET (syncer.egress, and exec/attach with the protocols
    # before v5.channel.k8s.io, which the API server hands to the kubelet), SPDY a POST.
    host_subresources=(("log", ("get",)), ("exec", ("create", "get")), ("attach", ("create", "get")),
                       ("portforward", ("create", "get")), ("ephemeralcontainers", ("patch",)),
                       ("resize", ("patch",))),
    workers=None,
)
