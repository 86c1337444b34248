"""A DaemonSet in a vcluster runs a pod on each node the vcluster shows, on the real node.

Its pods are pinned by `matchFields metadata.name`; the tenant policy lets a pod name
only nodes its vcluster already runs pods on (syncer.kinds.pods.safety), so a pin to any
other host node is refused.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kube.helpers import busybox_pod, eventually

from .test_tenant_policy import refused

pytestmark = [pytest.mark.kube, pytest.mark.realnode]


def test_a_daemonset_covers_the_vclusters_node_and_a_pin_elsewhere_is_refused(make_real_vcluster):
    vc = make_real_vcluster("daemons")
    core = vc.tenant.core
    core.create_namespaced_pod("default", busybox_pod("anchor", "sleep 3600"))
    eventually(lambda: core.read_namespaced_pod("anchor", "default").status.phase == "Running", timeout=120,
               what="a pod on the real node, so that the vcluster shows it")

    template = busybox_pod("agent", "sleep 3600", restart="Always")
    vc.tenant.apps.create_namespaced_daemon_set("default", client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="agent"),
        spec=client.V1DaemonSetSpec(selector=client.V1LabelSelector(match_labels={"app": "agent"}),
                                    template=client.V1PodTemplateSpec(metadata=template.metadata,
                                                                      spec=template.spec))))
    status = eventually(lambda: (s := vc.tenant.apps.read_namespaced_daemon_set("agent", "default").status)
                        .number_ready == 1 and s, timeout=120, what="the DaemonSet's pod Ready")
    assert status.desired_number_scheduled == 1
    host_pod = next(p for p in vc.host_pods() if p.metadata.labels.get("app") == "agent")
    assert host_pod.spec.node_name == "realnode-0"

    pinned = busybox_pod("elsewhere", "sleep 3600")
    pinned.spec.affinity = client.V1Affinity(node_affinity=client.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=client.V1NodeSelector(node_selector_terms=[
            client.V1NodeSelectorTerm(match_fields=[client.V1NodeSelectorRequirement(
                key="metadata.name", operator="In", values=["a-host-node-of-someone-else"])])])))
    core.create_namespaced_pod("default", pinned)  # accepted, as Kubernetes accepts a pod it cannot place
    refused(vc, "elsewhere", "metadata.name")
    assert not [p for p in vc.host_pods() if p.metadata.annotations.get("vcportal.io/object-name") == "elsewhere"]
