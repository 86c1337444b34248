"""The real node's containerd restarted while tenant pods run (issue 20). On a real host
containerd is restarted for upgrades and crashes; the containers belong to their shims,
not to containerd, so they must outlive it: the same container keeps running (no
restart), exec reaches it again once containerd is back, and new pods start."""

import time

import pytest

from localkube.testing import kubectl
from tests.kube.helpers import eventually, run_pod

pytestmark = [pytest.mark.kube, pytest.mark.realnode]


def container_of(vcluster, name: str):
    pod = vcluster.operator.core.read_namespaced_pod(vcluster.host_name(name), vcluster.host_namespace)
    return pod.status.container_statuses[0]


def test_tenant_pods_outlive_a_containerd_restart(make_real_vcluster, real_host_cluster):
    vcluster = make_real_vcluster("node-restart")
    run_pod(vcluster.cluster, "default", "steady", "sleep 3600")
    before = container_of(vcluster, "steady")
    processes = real_host_cluster.processes
    old = processes.pid("containerd")

    processes.stop("containerd")
    real_host_cluster.real_node().start(time.monotonic() + 180)
    assert processes.pid("containerd") not in (None, old)

    # The pod never restarts (busybox_pod: restartPolicy Never), so an exec that works
    # and the same container afterwards mean the container itself lived through it.
    said = eventually(lambda: kubectl(vcluster.kubeconfig, "exec", "steady", "--", "echo", "still here",
                                      check=False).stdout, timeout=60, what="exec after the restart")
    assert said == "still here\n"
    after = container_of(vcluster, "steady")
    assert (after.container_id, after.restart_count, after.ready) == (before.container_id, 0, True)
    run_pod(vcluster.cluster, "default", "fresh", "sleep 3600")
