"""The CRD manifest: a structural schema (what apiextensions.k8s.io/v1 requires), the
printer columns and the name rule. The API server's own verdict is in test_controller."""

import re

from gitops import crd
from vclusters.models import NAME_MAX_LENGTH, NAME_RE


def _version():
    (version,) = crd.manifest()["spec"]["versions"]
    return version


def _structural_problems(schema: dict, path: str) -> list[str]:
    """Every node names its type (or is int-or-string), and nothing below the root
    uses the constructs a structural schema forbids in place of a type."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if schema.get("x-kubernetes-int-or-string") and schema.get("anyOf") != [{"type": "integer"}, {"type": "string"}]:
        problems.append(f"{path}: int-or-string must be anyOf integer, string")
    for forbidden in ("$ref", "additionalItems", "not", "definitions"):
        if forbidden in schema:
            problems.append(f"{path}: {forbidden}")
    for name, child in schema.get("properties", {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    if "items" in schema:
        problems += _structural_problems(schema["items"], f"{path}[]")
    return problems


def test_it_is_namespaced_with_the_issue_s_names():
    spec = crd.manifest()["spec"]
    assert crd.manifest()["metadata"]["name"] == "virtualclusters.vcportal.io"
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == ("vcportal.io", "Namespaced", "VirtualCluster")
    assert _version()["name"] == "v1alpha1" and _version()["served"] and _version()["storage"]


def test_the_schema_is_structural():
    schema = _version()["schema"]["openAPIV3Schema"]
    assert _structural_problems(schema, "") == []
    assert schema["properties"]["metadata"] == {"type": "object"}  # only name rules via CEL


def test_spec_holds_the_optional_fields_and_nothing_is_required():
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == {"kubernetesVersion", "cpu", "memory", "storage", "pods"}
    assert "required" not in spec


def test_status_is_a_subresource_with_standard_conditions():
    assert _version()["subresources"] == {"status": {}}
    status = _version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"phase", "message", "conditions", "observedGeneration", "stepsDone", "stepsTotal",
            "kubeconfigSecretRef"} <= set(status)
    condition = status["conditions"]["items"]
    assert set(condition["properties"]) == {"type", "status", "reason", "message", "lastTransitionTime",
                                            "observedGeneration"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_printer_columns_show_phase_ready_message_and_age():
    columns = {c["name"]: c["jsonPath"] for c in _version()["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Message"] == ".status.message"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_the_name_rule_is_the_portal_s():
    rule = _version()["schema"]["openAPIV3Schema"]["x-kubernetes-validations"][0]["rule"]
    assert f"size() <= {NAME_MAX_LENGTH}" in rule
    assert re.search(r"matches\('\^(.*)\$'\)", rule).group(1) == NAME_RE.pattern
