"""PriorityClasses (syncer/kinds/priorityclasses.py): the host classes a policy offers are
shown in the vcluster, and a tenant pod's priority on the host is always one of them.

kwok runs no containers: this shows what the host's admission gives each host pod."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from syncer import names
from tests.kube.helpers import eventually

pytestmark = pytest.mark.kube


def priority_class(name: str, value: int, **fields) -> client.V1PriorityClass:
    return client.V1PriorityClass(metadata=client.V1ObjectMeta(name=name), value=value, **fields)


def pod(name: str, priority_class_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"priorityClassName": priority_class_name,
                     "containers": [{"name": "app", "image": "registry.example/app:1"}]}}


def test_pods_get_only_the_host_classes_the_policy_offers(make_vcluster, operator):
    tag = uuid.uuid4().hex[:8]
    high, low, reserved = f"tenant-high-{tag}", f"tenant-low-{tag}", f"reserved-{tag}"
    host = client.SchedulingV1Api(operator.api)
    host.create_priority_class(priority_class(high, 1000, description="for tenants"))
    host.create_priority_class(priority_class(low, 100))
    host.create_priority_class(priority_class(reserved, 5000))
    try:
        vc = make_vcluster("prio", policy={"priority_classes": [high, low]})
        scheduling = client.SchedulingV1Api(vc.tenant.api)

        def mirrors() -> dict:
            return {c.metadata.name: c for c in scheduling.list_priority_class().items
                    if (c.metadata.labels or {}).get(names.LABEL_MANAGED_BY) == vc.name}

        shown = eventually(lambda: (m := mirrors()) and set(m) == {high, low} and m, what="the offered classes")
        assert (shown[high].value, shown[high].description) == (1000, "for tenants")
        assert not shown[high].global_default
        scheduling.patch_priority_class(high, {"description": "changed by the tenant"})
        eventually(lambda: mirrors()[high].description == "for tenants", what="the mirror restored")

        scheduling.create_priority_class(priority_class(f"mine-{tag}", 500))
        scheduling.create_priority_class(priority_class(f"huge-{tag}", 1_000_000))
        scheduling.create_priority_class(priority_class(f"tiny-{tag}", 1))
        vc.tenant.core.create_namespace({"metadata": {"name": "ops"}})
        cases = {("default", "offered"): (high, high), ("default", "own"): (f"mine-{tag}", low),
                 ("default", "above"): (f"huge-{tag}", high), ("default", "below"): (f"tiny-{tag}", None),
                 ("kube-system", "critical"): ("system-node-critical", high)}
        for (namespace, name), (asked, _) in cases.items():
            vc.tenant.core.create_namespaced_pod(namespace, pod(name, asked))
        for (namespace, name), (asked, expected) in cases.items():
            host_pod = eventually(lambda: [p for p in vc.host_pods(namespace)
                                           if p.metadata.annotations[names.ANN_NAME] == name],
                                  what=f"the host pod of {namespace}/{name}")[0]
            assert host_pod.spec.priority_class_name == expected, (asked, host_pod.spec.priority_class_name)
            assert host_pod.spec.priority == {high: 1000, low: 100}.get(expected, 0), "set by the host's admission"

        host.delete_priority_class(low)
        eventually(lambda: set(mirrors()) == {high}, what="the mirror gone with the host class")
    finally:
        for name in (high, low, reserved):
            if [c for c in host.list_priority_class().items if c.metadata.name == name]:
                host.delete_priority_class(name)
