"""The vcluster's admission webhook, served by the syncer: a Service gets the host's
ClusterIP as it is created (syncer.kinds.services.admit), so no client ever holds an
address that does not route.

The vcluster's API server calls it as it calls the metrics API (syncer.metricsapi): at
the Service `kube-system/vcportal-metrics`, on the same listener, through the egress
(syncer.egress), over TLS with the vcluster's CA. It presents the front-proxy client
certificate there (controlplane.components.admission_configuration): the listener lets
in no other, so a pod that reaches the syncer cannot make it create host Services.

The webhook only ever sets the ClusterIPs the host chose for the host copy, which is
translated as the controller translates it: a tenant's own clusterIP is never asked of
the host (it is replaced, with a warning). Its failure policy is Ignore: when it cannot
act, the Service is created as the tenant wrote it and the controller recreates it with
the host's IP, as before the webhook. A dry run changes nothing on the host
(sideEffects NoneOnDryRun). The syncer writes the configuration at each start and resync,
so a tenant who deletes or changes it gets it back.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING

from .kinds.services import admit, cluster_ips
from .kube import Resource
from .metricsapi import SERVICE_NAME, SERVICE_NAMESPACE

if TYPE_CHECKING:
    from .controller import SyncContext

logger = logging.getLogger(__name__)

PATH = "/admission/services"
CONFIGURATION = "vcportal-service-cluster-ips"
WEBHOOKS = Resource("MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
                    "/apis/admissionregistration.k8s.io/v1", namespaced=False)
# Only creates that will get a ClusterIP ask the syncer (the code checks again).
MATCH_CONDITIONS = [
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
            "name": "cluster-ips.services.vcportal.io",
            "clientConfig": {"service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": port,
                                         "path": PATH},
                             "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["services"], "scope": "Namespaced"}],
            "matchConditions": MATCH_CONDITIONS,
            "failurePolicy": "Ignore",
            "sideEffects": "NoneOnDryRun",
            "timeoutSeconds": 10,
            "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
        }],
    }


def review(ctx: SyncContext, body: dict) -> dict:
    """The AdmissionReview answering `body`: always allowed, with the host's ClusterIPs
    patched in when the Service gets them."""
    request = body.get("request") or {}
    response: dict = {"uid": request.get("uid", ""), "allowed": True}
    service = _service(request)
    if service is not None and (host_copy := admit(ctx, service)) is not None:
        response.update(_patched(service, host_copy))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _service(request: dict) -> dict | None:
    """The Service a real (not dry-run) create would make, with its namespace."""
    kind = request.get("kind") or {}
    obj = request.get("object")
    if request.get("operation") != "CREATE" or request.get("dryRun") or kind.get("kind") != "Service" \
            or kind.get("group") or not isinstance(obj, dict) or not request.get("namespace"):
        return None
    meta = {**(obj.get("metadata") or {}), "namespace": request["namespace"]}
    return {**obj, "metadata": meta, "spec": obj.get("spec") or {}}


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
