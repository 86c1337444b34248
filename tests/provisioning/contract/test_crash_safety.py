"""A worker killed with SIGKILL in the middle of any provisioning step: after a
restart every vcluster still reaches Ready, with no duplicate or orphaned object or
process. Part of the runtime contract: each step on each runtime."""

import os
from collections import Counter

import pytest

from accounts.audit import Actor
from provisioning import manifests, pipeline
from provisioning.hostkube import HostKube
from provisioning.runtimes import kubeobjects
from tests.kube.helpers import eventually
from tests.provisioning.conftest import processes_under
from vclusters import services
from vclusters.models import Phase, StepStatus, VCluster

pytestmark = pytest.mark.django_db(transaction=True)

# Each step sleeps this long between its effect and its record, so the kill lands
# in the worst place: done on the host, not yet written down.
PAUSE = "1.0"
LOCK_TTL = "4"


def test_a_worker_killed_in_each_step_in_turn_resumes_to_ready(world, host, celery_worker, runtime_host, var_dir):
    """One vcluster, the worker killed in every step in turn: each restart redoes the
    step it was killed in (done, not recorded) before the next one pauses and is
    killed in turn. One provisioning for all the steps: a vcluster per step took nine
    times as long."""
    vcluster = None
    for step in (s.name for s in pipeline.PROVISION):
        # Only the step under test pauses: the others run at full speed.
        celery_worker.start(VCPORTAL_FAULT_PAUSE_AFTER_STEP=PAUSE, VCPORTAL_FAULT_PAUSE_STEP=step,
                            VCPORTAL_VCLUSTER_LOCK_TTL=LOCK_TTL)
        vcluster = vcluster or services.create_vcluster(Actor(world.teammate), world.alpha, name="crash")
        eventually(
            lambda: vcluster.steps.filter(name=step, status=StepStatus.RUNNING).exists(),
            timeout=90, interval=0.05, what=f"step {step} running",
        )
        celery_worker.kill()
    celery_worker.start(VCPORTAL_VCLUSTER_LOCK_TTL=LOCK_TTL)

    eventually(
        lambda: VCluster.objects.get(pk=vcluster.pk).phase == Phase.READY,
        timeout=120, interval=0.5, what="Ready after the restarts",
    )
    vcluster.refresh_from_db()
    assert [s.status for s in vcluster.steps.all()] == [StepStatus.SUCCEEDED] * len(pipeline.PROVISION)

    host_kube = HostKube(runtime_host.cluster.admin_kubeconfig.read_text())
    owned = host_kube.find_labelled(f"{manifests.VCLUSTER_LABEL}={vcluster.pk}")
    assert len(owned) == len(set(owned))
    assert sum(1 for o in owned if o.startswith("Namespace ")) == 1
    counts = processes_under(var_dir / "vclusters" / str(vcluster.pk))
    if runtime_host.runtime == "local":
        assert sorted(exe for _, exe in counts) == sorted(
            ["kine", "kube-apiserver", "kube-controller-manager", os.path.basename(os.path.realpath(os.sys.executable))]
        )
        assert {process: n for process, n in counts.items() if n > 1} == {}
    else:  # nothing on the worker; one control-plane pod and one claim on the host
        assert counts == Counter()
        ns = vcluster.placement.host_namespace
        pods = host_kube.core.list_namespaced_pod(ns, label_selector=f"{kubeobjects.COMPONENT_LABEL}=control-plane")
        assert [p.metadata.name for p in pods.items] == [kubeobjects.POD]
        assert len(host_kube.core.list_namespaced_persistent_volume_claim(ns).items) == 1
