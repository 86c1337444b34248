"""Pods: a tenant's workloads run as host pods, and the vcluster shows them running."""

from __future__ import annotations

import threading

import requests
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from urllib3.exceptions import ProtocolError

from syncer import names
from tests.kube.helpers import deployment as kube_deployment
from tests.kube.helpers import eventually


def deployment(name: str, replicas: int, **pod_spec) -> client.V1Deployment:
    app = client.V1Container(name="app", image="registry.example/app:1")
    return kube_deployment(name, client.V1PodSpec(containers=[app], **pod_spec), replicas)


def running(pods):
    return [p for p in pods if p.status.phase == "Running"]


def test_a_deployment_of_three_replicas_runs_on_the_host_and_shows_running_in_the_vcluster(vcluster):
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("web", 3))

    host_pods = eventually(lambda: len(running(vcluster.host_pods())) == 3 and vcluster.host_pods(),
                           what="3 Running host pods")
    virtual = eventually(
        lambda: (pods := vcluster.tenant.core.list_namespaced_pod("default", label_selector="app=web").items)
        and len(pods) == 3 and all(p.status.phase == "Running" and p.spec.node_name and p.status.pod_ip
                                   for p in pods) and pods,
        what="3 virtual pods Running with a node and an IP")

    by_virtual_name = {p.metadata.annotations[names.ANN_NAME]: p for p in host_pods}
    assert set(by_virtual_name) == {p.metadata.name for p in virtual}
    for pod in virtual:
        host = by_virtual_name[pod.metadata.name]
        assert host.metadata.name == vcluster.host_name(pod.metadata.name)
        assert host.metadata.annotations[names.ANN_UID] == pod.metadata.uid
        assert pod.spec.node_name == host.spec.node_name
        assert pod.status.pod_ip == host.status.pod_ip
        assert pod.status.host_ip == host.status.host_ip
        assert [c.ready for c in pod.status.container_statuses] == [True]
    nodes = {n.metadata.name for n in vcluster.tenant.core.list_node().items}
    assert {p.spec.node_name for p in virtual} <= nodes

    # The syncer's /metrics (docs/metrics.md): how long each change took to cross over.
    host, _, port = vcluster.syncer.health.rpartition(":")
    text = requests.get(f"http://{host}:{port}/metrics", timeout=5).text
    found = {(s.name, s.labels.get("kind")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert found[("vcportal_syncer_sync_lag_seconds_count", "pods")] >= 3
    assert found[("vcportal_syncer_sync_lag_seconds_sum", "pods")] > 0
    assert ("vcportal_syncer_queue_depth", "pods") in found


def test_scaling_to_zero_removes_the_host_pods_and_then_the_unused_virtual_nodes(vcluster):
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("web", 3))
    eventually(lambda: len(running(vcluster.tenant.core.list_namespaced_pod("default").items)) == 3,
               what="3 virtual pods Running")
    assert vcluster.tenant.core.list_node().items

    vcluster.tenant.apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})

    eventually(lambda: not vcluster.host_pods(), what="no host pods left")
    eventually(lambda: not vcluster.tenant.core.list_namespaced_pod("default").items, what="no virtual pods left")
    eventually(lambda: not vcluster.tenant.core.list_node().items, what="the unused virtual nodes removed")


def test_a_host_pod_deleted_by_someone_else_is_replaced_by_its_controller_in_the_vcluster(vcluster):
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("web", 1))
    first = eventually(lambda: running(vcluster.tenant.core.list_namespaced_pod("default").items),
                       what="a Running virtual pod")[0]

    vcluster.operator.core.delete_namespaced_pod(vcluster.host_name(first.metadata.name), vcluster.host_namespace)

    replacement = eventually(
        lambda: [p for p in running(vcluster.tenant.core.list_namespaced_pod("default").items)
                 if p.metadata.name != first.metadata.name],
        what="a replacement pod Running")[0]
    names_now = {p.metadata.name for p in vcluster.tenant.core.list_namespaced_pod("default").items}
    assert first.metadata.name not in names_now
    eventually(lambda: [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()]
               == [replacement.metadata.name], what="only the replacement on the host")


def test_a_pod_with_scheduling_gates_waits_for_them_before_it_reaches_the_host(vcluster):
    """As Kueue and other admission controllers use them: no host pod (and none of the
    host's quota taken) while a gate remains; the scheduler's condition says why."""
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="gated"), spec=client.V1PodSpec(
        containers=[client.V1Container(name="app", image="registry.example/app:1")],
        scheduling_gates=[client.V1PodSchedulingGate(name="example.com/queue")]))
    vcluster.tenant.core.create_namespaced_pod("default", pod)
    read = lambda: vcluster.tenant.core.read_namespaced_pod("gated", "default")  # noqa: E731
    condition = eventually(lambda: [c for c in read().status.conditions or [] if c.type == "PodScheduled"],
                           what="the PodScheduled condition")[0]
    assert (condition.status, condition.reason) == ("False", "SchedulingGated")
    assert vcluster.host_pods() == []

    vcluster.tenant.core.patch_namespaced_pod("gated", "default", {"spec": {"schedulingGates": None}})
    eventually(lambda: read().status.phase == "Running" and read().spec.node_name, what="the pod Running once ungated")
    assert [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()] == ["gated"]


def test_a_virtual_pod_deleted_with_a_grace_period_is_deleted_on_the_host_with_the_same_one(vcluster):
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="graceful"), spec=client.V1PodSpec(
        termination_grace_period_seconds=45,
        containers=[client.V1Container(name="app", image="registry.example/app:1")]))
    vcluster.tenant.core.create_namespaced_pod("default", pod)
    eventually(lambda: running(vcluster.tenant.core.list_namespaced_pod("default").items), what="the pod Running")
    seen = []
    watcher = HostPodWatcher(vcluster, vcluster.host_name("graceful"), seen)
    watcher.start()

    vcluster.tenant.core.delete_namespaced_pod("graceful", "default", grace_period_seconds=17)

    eventually(lambda: not vcluster.host_pods(), what="the host pod gone")
    eventually(lambda: not vcluster.tenant.core.list_namespaced_pod("default").items, what="the virtual pod gone")
    watcher.stop()
    assert 17 in {p.metadata.deletion_grace_period_seconds for p in seen}


class HostPodWatcher(threading.Thread):
    """Records every version of one host pod (kwok finishes deletions within moments)."""

    def __init__(self, vcluster, name: str, seen: list):
        super().__init__(daemon=True)
        self.vcluster, self.name, self.seen = vcluster, name, seen
        self.watch = watch.Watch()

    def run(self):
        try:
            for event in self.watch.stream(self.vcluster.operator.core.list_namespaced_pod,
                                           self.vcluster.host_namespace,
                                           field_selector=f"metadata.name={self.name}", timeout_seconds=30):
                self.seen.append(event["object"])
        except ProtocolError:  # the server ended the stream: nothing more to see
            pass

    def stop(self):
        self.watch.stop()
        self.join(35)


def test_the_scheduler_event_of_the_host_pod_shows_on_the_virtual_pod(vcluster):
    vcluster.tenant.core.create_namespaced_pod("default", client.V1Pod(
        metadata=client.V1ObjectMeta(name="solo"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="registry.example/app:1")])))

    def scheduled():
        events = vcluster.tenant.core.list_namespaced_event(
            "default", field_selector="involvedObject.name=solo").items
        return [e for e in events if e.reason == "Scheduled"]

    event = eventually(scheduled, what="a Scheduled event on the virtual pod")[0]
    assert event.message.startswith("Successfully assigned default/solo to ")
    assert vcluster.host_namespace not in event.message
    # Each copy ends the event's reconcile: no failure retried with backoff (a name
    # clash in the events controller once made every copy both).
    assert not [line for line in vcluster.syncer.tail(1000).splitlines() if "ERROR syncer.controller events" in line]
