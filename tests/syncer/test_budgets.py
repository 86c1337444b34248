"""PodDisruptionBudgets (syncer/kinds/pdbs.py): a host drain respects a tenant's budget,
which can never hold up another tenant's pods or another namespace's.

kwok marks host pods Running and Ready, so the host's disruption controller counts them
as it would on a real node; the evictions are the host API's own."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from syncer import names
from tests.kube.helpers import eventually, new_namespace

pytestmark = pytest.mark.kube


def web_pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}


def budget(selector: dict | None, min_available: int = 1) -> dict:
    spec = {"minAvailable": min_available, **({"selector": selector} if selector is not None else {})}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"}, "spec": spec}


def running_host_pod(vc, namespace: str) -> client.V1Pod:
    return eventually(lambda: [p for p in vc.host_pods(namespace) if p.status.phase == "Running"],
                      what=f"{vc.name}'s {namespace}/web running on the host")[0]


def evicted(operator, pod: client.V1Pod) -> bool:
    """Asks the host's eviction API, as `kubectl drain` does: True if it evicted, False on 429."""
    try:
        operator.core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)))
    except ApiException as exc:
        if exc.status == 429:
            return False
        raise
    return True


def test_a_host_drain_respects_a_tenants_budget_for_its_own_pods_only(make_vcluster, operator):
    shared = new_namespace(operator.core, "host-pdb")
    vc, neighbour = make_vcluster("pdb", host_namespace=shared), make_vcluster("pdb-next", host_namespace=shared)
    vc.tenant.core.create_namespace({"metadata": {"name": "shop"}})
    for tenant, namespace in ((vc, "default"), (vc, "shop"), (neighbour, "default")):
        tenant.tenant.core.create_namespaced_pod(namespace, web_pod())
    guarded, other_namespace, neighbours = (running_host_pod(vc, "default"), running_host_pod(vc, "shop"),
                                            running_host_pod(neighbour, "default"))
    # Every pod of its namespace (the empty selector), by the tenant's own labels (which
    # the neighbour's pod shares), and by the syncer's labels, naming the neighbour.
    policy = client.PolicyV1Api(vc.tenant.api)
    policy.create_namespaced_pod_disruption_budget("default", budget({}))
    host = client.PolicyV1Api(operator.api)
    copy = eventually(lambda: host.read_namespaced_pod_disruption_budget(vc.host_name("keep"), shared),
                      what="the host copy of the budget")
    assert copy.metadata.annotations[names.ANN_NAME] == "keep"
    eventually(lambda: (s := host.read_namespaced_pod_disruption_budget(vc.host_name("keep"), shared).status)
               and s.expected_pods == 1 and s.disruptions_allowed == 0, what="the host counting one pod, guarded")

    assert not evicted(operator, guarded), "the tenant's budget holds the drain"
    assert evicted(operator, neighbours), "another tenant's pod of the same name and labels is not guarded"
    assert evicted(operator, other_namespace), "nor a pod of another virtual namespace"

    policy.patch_namespaced_pod_disruption_budget("keep", "default", {"spec": {
        "minAvailable": None, "maxUnavailable": 1,
        "selector": {"matchLabels": {names.LABEL_MANAGED_BY: neighbour.name}}}})
    eventually(lambda: host.read_namespaced_pod_disruption_budget(vc.host_name("keep"), shared).spec.max_unavailable
               == 1, what="the change on the host copy")
    assert host.read_namespaced_pod_disruption_budget(vc.host_name("keep"), shared).spec.selector.match_expressions \
        == [client.V1LabelSelectorRequirement(key=names.LABEL_MANAGED_BY, operator="In", values=[vc.name]),
            client.V1LabelSelectorRequirement(key=names.LABEL_NAMESPACE, operator="In", values=["default"])]

    policy.delete_namespaced_pod_disruption_budget("keep", "default")
    eventually(lambda: not host.list_namespaced_pod_disruption_budget(
        shared, label_selector=f"{names.LABEL_MANAGED_BY}={vc.name}").items, what="the host copy gone")
    assert evicted(operator, guarded)
