"""In-place resize (`kubectl patch --subresource resize`) inside a vcluster, on the real
node: the host pod's resize subresource takes it, the host's kubelet applies it to the
container's cgroup, and the virtual pod's status says so with its own generations. The
host namespace's quota still bounds what a tenant can resize to."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from localkube.testing import kubectl
from tests.kube.helpers import busybox_pod, eventually

pytestmark = [pytest.mark.kube, pytest.mark.realnode]
# The container's CPU limit in microseconds per 100 ms period: cgroup v2, else v1 (this machine's).
CPU_QUOTA = "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"


def resources(cpu_request: str, cpu_limit: str) -> dict:
    return {"requests": {"cpu": cpu_request, "memory": "32Mi"}, "limits": {"cpu": cpu_limit, "memory": "64Mi"}}


def resize(vc, pod: str, cpu_request: str, cpu_limit: str) -> None:
    patch = {"spec": {"containers": [{"name": "main", "resources": resources(cpu_request, cpu_limit)}]}}
    kubectl(vc.kubeconfig, "patch", "pod", pod, "--subresource=resize", "--type=strategic", "-p", json.dumps(patch))


def resized(pod: client.V1Pod) -> bool:
    """What the conformance suite waits for: this generation observed, and no resize pending."""
    return pod.status.observed_generation == pod.metadata.generation and not any(
        c.type in ("PodResizePending", "PodResizeInProgress") for c in pod.status.conditions or [])


def test_a_resize_reaches_the_container_and_the_host_quota_still_bounds_it(make_real_vcluster):
    vc = make_real_vcluster("rsz")
    vc.operator.core.create_namespaced_resource_quota(vc.host_namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="team"), spec=client.V1ResourceQuotaSpec(hard={"requests.cpu": "500m"})))
    eventually(lambda: vc.operator.core.read_namespaced_resource_quota("team", vc.host_namespace).status.hard,
               what="the host quota in force")
    # As production's host namespaces have (provisioning.manifests.limit_range): defaults for what a pod leaves out.
    vc.operator.core.create_namespaced_limit_range(vc.host_namespace, client.V1LimitRange(
        metadata=client.V1ObjectMeta(name="defaults"), spec=client.V1LimitRangeSpec(limits=[client.V1LimitRangeItem(
            type="Container", default={"memory": "64Mi"}, default_request={"cpu": "50m"})])))
    pod = busybox_pod("app", "sleep 3600", resources=client.V1ResourceRequirements(**resources("100m", "200m")))
    vc.tenant.core.create_namespaced_pod("default", pod)
    read = lambda: vc.tenant.core.read_namespaced_pod("app", "default")  # noqa: E731
    eventually(lambda: read().status.phase == "Running", timeout=120, what="the pod running")

    resize(vc, "app", "150m", "300m")
    eventually(lambda: resized(read()) and read().status.container_statuses[0].resources.limits["cpu"] == "300m",
               timeout=120, what="the resize done, in the virtual pod's status")
    status = read().status.container_statuses[0]
    assert status.allocated_resources["cpu"] == "150m" and status.restart_count == 0
    quota = kubectl(vc.kubeconfig, "exec", "app", "--", "sh", "-c", CPU_QUOTA).stdout
    assert quota.split()[0] == "30000", "the host's kubelet applied the new limit to the container's cgroup"

    # The host's defaults on a pod that set no resources are not a resize the syncer undoes.
    vc.tenant.core.create_namespaced_pod("default", busybox_pod("plain", "sleep 3600"))
    eventually(lambda: vc.tenant.core.read_namespaced_pod("plain", "default").status.phase == "Running",
               timeout=120, what="the plain pod running")
    plain = vc.operator.core.read_namespaced_pod(vc.host_name("plain"), vc.host_namespace)
    assert plain.spec.containers[0].resources.limits == {"memory": "64Mi"}
    assert plain.metadata.generation == 1
    assert f"pods/{plain.metadata.name}/resize" not in vc.syncer.log.read_text(), "no resize asked of the host"
    status = vc.tenant.core.read_namespaced_pod("plain", "default").status
    assert "PodResizePending" not in [c.type for c in status.conditions]
    # Nor do they show in its status, which must match the spec it is compared with.
    [container] = status.container_statuses
    assert (container.resources.requests, container.resources.limits, container.allocated_resources) == (
        None, None, None)

    # Beyond the host namespace's quota: the vcluster takes it, the host refuses it, the tenant reads why
    # in an event and in the pod's status.
    resize(vc, "app", "600m", "800m")
    eventually(lambda: [e for e in vc.tenant.core.list_namespaced_event("default").items
                        if e.reason == "HostRefused" and "exceeded quota" in e.message
                        and e.involved_object.name == "app"],
               what="the host's refusal of the resize, as an event")
    host_pod = vc.operator.core.read_namespaced_pod(vc.host_name("app"), vc.host_namespace)
    assert host_pod.spec.containers[0].resources.requests["cpu"] == "150m"
    # What a kubelet says of a resize it cannot make; the running container keeps what it had.
    pod = eventually(lambda: (p := read()).status.observed_generation == p.metadata.generation and p,
                     what="the refused resize observed")
    pending = [c for c in pod.status.conditions if c.type == "PodResizePending"]
    assert [(c.status, c.reason) for c in pending] == [("True", "Infeasible")]
    assert "exceeded quota" in pending[0].message
    assert pod.status.container_statuses[0].allocated_resources["cpu"] == "150m"
