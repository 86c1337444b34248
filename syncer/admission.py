"""The vcluster's admission webhooks, served by the syncer.

- Services (mutating): a Service gets the host's ClusterIP as it is created, or as an
  update turns an ExternalName Service (which has none) into one that has one
  (syncer.kinds.services.admit), so no client ever holds an address that does not route.
  The webhook only ever sets the ClusterIPs the host chose for the host copy, which is
  translated as the controller translates it: a tenant's own clusterIP is never asked of
  the host (it is replaced, with a warning). A dry run changes nothing on the host
  (sideEffects NoneOnDryRun).
- Pods (validating): a pod the host cluster's tenant policy refuses (a hostPath volume, a
  pin to a host node label, a runtime class it does not offer: syncer.kinds.pods.safety)
  is refused at creation with the rule's reason, as Pod Security admission refuses a pod,
  rather than stored to wait forever with a HostRefused event. The check is the pod
  controller's own translation, on the syncer's informers: nothing is written, so a dry
  run (`kubectl apply --dry-run=server`) gets the same answer. What the host's own
  admission decides (its Pod Security level, its quota) is still reported as HostRefused.

The vcluster's API server calls them as it calls the metrics API (syncer.metricsapi): at
the Service `kube-system/vcportal-metrics`, on the same listener, through the egress
(syncer.egress), over TLS with the vcluster's CA. It presents the front-proxy client
certificate there (controlplane.components.admission_configuration): the listener lets
in no other, so a pod that reaches the syncer cannot make it create host Services.

Both fail open (failurePolicy Ignore), and a tenant, cluster-admin inside, may delete
them: they make the vcluster pleasant, not safe. Without the Service webhook the
controller recreates a Service with the host's IP; without the pod webhook, or before
the syncer's informers have synced, the controller refuses the pod as it syncs. The
syncer writes both configurations at each start and resync.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .kinds.pods.safety import may_refuse_cel
from .kinds.services import admit, cluster_ips
from .kube import Resource
from .metricsapi import SERVICE_NAME, SERVICE_NAMESPACE

if TYPE_CHECKING:
    from .controller import SyncContext

logger = logging.getLogger(__name__)

PATH = "/admission/services"
POD_PATH = "/admission/pods"
CONFIGURATION = "vcportal-service-cluster-ips"
POD_CONFIGURATION = "vcportal-pod-policy"
WEBHOOKS = Resource("MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
                    "/apis/admissionregistration.k8s.io/v1", namespaced=False)
VALIDATING_WEBHOOKS = Resource("ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
                               "/apis/admissionregistration.k8s.io/v1", namespaced=False)
# Only creates, and updates from ExternalName, that will get a ClusterIP ask the syncer
# (the code checks again).
MATCH_CONDITIONS = [
    {"name": "created-or-from-external-name",
     "expression": "request.operation == 'CREATE' || "
                   "(has(oldObject.spec.type) && oldObject.spec.type == 'ExternalName')"},
    {"name": "named", "expression": "has(object.metadata.name) && object.metadata.name != ''"},
    {"name": "not-external-name", "expression": "!has(object.spec.type) || object.spec.type != 'ExternalName'"},
    {"name": "not-headless", "expression": "!has(object.spec.clusterIP) || object.spec.clusterIP != 'None'"},
    {"name": "not-the-api-server",
     "expression": "!(request.namespace == 'default' && object.metadata.name == 'kubernetes')"},
]


def configuration(port: int, ca_pem: bytes) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION},
        "webhooks": [{
            **_webhook("cluster-ips.services.vcportal.io", "services", PATH, port, ca_pem, ("CREATE", "UPDATE")),
            "matchConditions": MATCH_CONDITIONS,
            "sideEffects": "NoneOnDryRun",
            "reinvocationPolicy": "Never",
        }],
    }


def pod_configuration(port: int, ca_pem: bytes) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": POD_CONFIGURATION},
        "webhooks": [{**_webhook("tenant-policy.pods.vcportal.io", "pods", POD_PATH, port, ca_pem),
                      # Only pods check_pod might refuse outright ask the syncer (the code checks all).
                      "matchConditions": [{"name": "may-be-refused", "expression": may_refuse_cel()}],
                      "sideEffects": "None"}],
    }


def _webhook(name: str, resource: str, path: str, port: int, ca_pem: bytes,
             operations: tuple[str, ...] = ("CREATE",)) -> dict:
    return {
        "name": name,
        "clientConfig": {"service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": port, "path": path},
                         "caBundle": base64.b64encode(ca_pem).decode()},
        "rules": [{"operations": list(operations), "apiGroups": [""], "apiVersions": ["v1"], "resources": [resource],
                   "scope": "Namespaced"}],
        "failurePolicy": "Ignore",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1"],
    }


def review(ctx: SyncContext, body: dict) -> dict:
    """The AdmissionReview answering `body`: always allowed, with the host's ClusterIPs
    patched in when the Service gets them."""
    request = body.get("request") or {}
    response: dict = {"uid": request.get("uid", ""), "allowed": True}
    service = _service(request)
    from_external_name = request.get("operation") == "UPDATE"
    if service is not None and (host_copy := admit(ctx, service, from_external_name)) is not None:
        response.update(_patched(service, host_copy))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def review_pod(ctx: SyncContext, synced: Callable[[], bool], body: dict) -> dict:
    """The AdmissionReview answering `body`: refused with the tenant policy's reason when
    the pod controller would refuse the pod; allowed when it would not, and until the
    syncer's informers have synced (`synced`), as they say which nodes the vcluster shows."""
    request = body.get("request") or {}
    response: dict = {"uid": request.get("uid", ""), "allowed": True}
    pod = _created(request, "Pod")
    reason = ctx.controllers["Pod"].refusal(pod) if pod is not None and synced() else None
    if reason is not None:
        response.update(allowed=False, status={
            "code": 403, "reason": "Forbidden",
            "message": f"this host cluster's tenant policy refuses the Pod: {reason}"})
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _created(request: dict, kind_name: str) -> dict | None:
    """The object of kind `kind_name` (core group) that a create would make, with its namespace."""
    return _requested(request, kind_name) if request.get("operation") == "CREATE" else None


def _requested(request: dict, kind_name: str) -> dict | None:
    """The object of kind `kind_name` (core group) the request would store, with its namespace."""
    kind = request.get("kind") or {}
    obj = request.get("object")
    if kind.get("kind") != kind_name or kind.get("group") or not isinstance(obj, dict) or not request.get("namespace"):
        return None
    meta = {**(obj.get("metadata") or {}), "namespace": request["namespace"]}
    return {**obj, "metadata": meta, "spec": obj.get("spec") or {}}


def _service(request: dict) -> dict | None:
    """The Service a real (not dry-run) create would make, or an update would make of an
    ExternalName Service, with its namespace."""
    if request.get("dryRun"):
        return None
    if request.get("operation") == "UPDATE":
        old = request.get("oldObject") or {}
        return _requested(request, "Service") if (old.get("spec") or {}).get("type") == "ExternalName" else None
    return _created(request, "Service")


def _patched(service: dict, host_copy: dict) -> dict:
    ips, families = cluster_ips(host_copy), host_copy["spec"].get("ipFamilies")
    patch = [{"op": "add", "path": "/spec/clusterIP", "value": ips[0]},
             {"op": "add", "path": "/spec/clusterIPs", "value": ips}]
    if families:
        patch.append({"op": "add", "path": "/spec/ipFamilies", "value": families})
    answer = {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}
    asked = cluster_ips(service)
    if asked and asked != ips:
        answer["warnings"] = [f"spec.clusterIP: the host cluster chooses Service addresses; this Service gets "
                              f"{', '.join(ips)}, not {', '.join(asked)}"]
    return answer
