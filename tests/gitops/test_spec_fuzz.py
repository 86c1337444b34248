"""A fuzzing pass over the VirtualCluster spec (issue 20), like the REST API's: 120
specs with every field given odd values (wrong types, huge, negative and fractional
numbers, malformed quantities and versions, unknown fields), applied to the real
management API server. What its schema refuses never reaches the portal; every object
it admits gets, after one pass of the controller, a status that says Refused and
why, names the field where a field is at fault, and creates nothing. The team's quota
is zero, so no spec, however valid, starts a vcluster here."""

import logging
import random

import pytest
from kubernetes.client.rest import ApiException

from gitops import controller, crd
from gitops.status import REFUSED
from vclusters.models import VCluster

pytestmark = pytest.mark.django_db(transaction=True)

SPECS = 120
FIELDS = ["kubernetesVersion", "cpu", "memory", "storage", "pods"]
ODD_VALUES = [
    0, 1, -1, 7, 2**31, 2**53 + 1, 2**63 - 1, 10**30, 1.5, -0.25, 1e300, True, None, [], ["1"], {}, {"value": 1},
    "", " ", "1", "0", "-1", "100m", "1.5", "1.5Gi", "1e3", "1E9", "0x10", "1 Gi", "1Gi ", "+1", "--1", "1Ki1",
    "999999999999999999999Ei", "1e100", "NaN", "Infinity", "∞", "١٢", "a" * 300, "v1.37.2", "v0.1.0", "latest",
    "1.37", "../../etc/passwd", "${HOME}", "'; DROP TABLE x; --", "\u0000", "\n",
]


def odd_spec(rng: random.Random) -> dict:
    spec = {field: rng.choice(ODD_VALUES) for field in FIELDS if rng.random() < 0.6}
    if rng.random() < 0.2:
        spec[rng.choice(["extra", "replicas", "kubeconfig"])] = rng.choice(ODD_VALUES)
    return spec


def test_every_admitted_spec_is_refused_with_a_reason_and_creates_nothing(management, settings, world, caplog):
    controller.reconcile(settings.VCPORTAL_GITOPS_CLUSTER)  # installs the CRD
    world.alpha.max_vclusters = 0
    world.alpha.save()
    namespace = management.namespace(team="alpha")
    resource = management.kube.dynamic.resources.get(api_version=crd.API_VERSION, kind=crd.KIND)
    rng = random.Random(20)
    admitted, refused_by_the_schema = {}, 0
    for n in range(SPECS):
        spec = odd_spec(rng)
        body = {"apiVersion": crd.API_VERSION, "kind": crd.KIND,
                "metadata": {"name": f"fuzz-{n}", "namespace": namespace}, "spec": spec}
        try:
            resource.create(body=body, namespace=namespace)
        except ApiException as exc:
            assert exc.status in (400, 422), exc
            refused_by_the_schema += 1
            continue
        admitted[f"fuzz-{n}"] = spec
    assert admitted and refused_by_the_schema, (len(admitted), refused_by_the_schema)

    caplog.set_level(logging.INFO, logger="gitops")
    controller.reconcile(settings.VCPORTAL_GITOPS_CLUSTER)

    assert not [r for r in caplog.records if r.name.startswith("gitops") and r.levelno >= logging.WARNING]
    for name, spec in admitted.items():
        status = management.get(name, namespace).get("status") or {}
        assert status.get("phase") == REFUSED, (spec, status)
        message = status.get("message", "")
        assert message.startswith(("spec.", "Quota max_vclusters exhausted")), (spec, status)
    assert not VCluster.objects.exists()
