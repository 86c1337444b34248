"""The VirtualCluster custom resource: its definition, as a plain manifest.

`metadata.name` is the vcluster's name, checked by the API server with the portal's
rule (a DNS label of at most 40 characters) through a CEL rule on the root, the only
place a CRD can see it. Quantities are int-or-string as in Pod resources; whether a
value is a valid quantity, a supported version, or within quota is the portal's
decision, reported in status, so all refusals read alike.
"""

from accounts import resources
from vclusters.lifecycle import Phase
from vclusters.models import NAME_MAX_LENGTH, NAME_RE

from .status import REFUSED

GROUP = "vcportal.io"
VERSION = "v1alpha1"
KIND = "VirtualCluster"
PLURAL = "virtualclusters"
NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"

# A platform admin maps a namespace of the management cluster to a team with this label.
TEAM_LABEL = "vcportal.io/team"
# Holds a VirtualCluster being deleted until its vcluster is torn down.
FINALIZER = "vcportal.io/teardown"

_QUANTITY = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}

_CONDITION = {
    "type": "object",
    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
    "properties": {
        "type": {"type": "string", "maxLength": 316},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "reason": {"type": "string", "maxLength": 1024},
        "message": {"type": "string", "maxLength": 32768},
    },
}

SPEC = {
    "type": "object",
    "description": "What the vcluster is created with; every field is optional (the portal's defaults apply).",
    "properties": {
        "kubernetesVersion": {"type": "string", "description": "One of the portal's versions, e.g. v1.37.2."},
        **{r.name: {**({"type": "integer", "minimum": 1} if r.count else _QUANTITY),
                    "description": f"{r.label}, e.g. {r.example}."} for r in resources.RESOURCES},
    },
}

STATUS = {
    "type": "object",
    "properties": {
        "phase": {"type": "string", "enum": [*Phase.values, REFUSED],
                  "description": "The vcluster's phase in the portal, or Refused."},
        "message": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64"},
        "stepsDone": {"type": "integer"},
        "stepsTotal": {"type": "integer"},
        "vclusterId": {"type": "integer", "description": "The vcluster's id in the portal."},
        "kubeconfigSecretRef": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
        },
        "conditions": {
            "type": "array",
            "items": _CONDITION,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    },
}

NAME_RULE = {
    "rule": f"self.metadata.name.size() <= {NAME_MAX_LENGTH} && self.metadata.name.matches('^{NAME_RE.pattern}$')",
    "message": f"metadata.name is the vcluster's name: a DNS label (lowercase letters, digits and '-') "
               f"of at most {NAME_MAX_LENGTH} characters",
}

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Steps", "type": "string", "jsonPath": ".status.stepsDone", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def manifest() -> dict:
    """The CustomResourceDefinition, as applied to the management cluster."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "vcportal"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "virtualcluster", "kind": KIND, "shortNames": ["vc"],
                      "categories": ["vcportal"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A virtual Kubernetes cluster, created and kept by vcportal for the team "
                                   f"this namespace is mapped to (label {TEAM_LABEL}).",
                    "x-kubernetes-validations": [NAME_RULE],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": SPEC,
                        "status": STATUS,
                    },
                }},
            }],
        },
    }
