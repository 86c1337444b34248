"""A worker killed with SIGKILL in the middle of any provisioning step: after a
restart every vcluster still reaches Ready, with no duplicate or orphaned object."""

import os
from collections import Counter

import pytest

from accounts.audit import Actor
from localkube.processes import process_alive
from provisioning import manifests, pipeline
from provisioning.hostkube import HostKube
from tests.kube.helpers import eventually
from vclusters import services
from vclusters.models import Phase, StepStatus, VCluster

pytestmark = pytest.mark.django_db(transaction=True)

# Each step sleeps this long between its effect and its record, so the kill lands
# in the worst place: done on the host, not yet written down.
PAUSE = "1.0"
LOCK_TTL = "4"


def processes_under(root) -> Counter:
    """How many live processes run from each state directory below `root`, by name."""
    found = Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not process_alive(int(entry)):
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            exe = os.path.basename(os.readlink(f"/proc/{entry}/exe"))
        except OSError:
            continue
        if cwd.startswith(str(root)):
            found[(cwd, exe)] += 1
    return found


@pytest.mark.parametrize("step", [s.name for s in pipeline.PROVISION])
def test_a_worker_killed_during_a_step_resumes_to_ready(step, world, host, celery_worker, host_cluster, var_dir):
    env = {"VCPORTAL_FAULT_PAUSE_AFTER_STEP": PAUSE, "VCPORTAL_VCLUSTER_LOCK_TTL": LOCK_TTL}
    celery_worker.start(**env)
    vcluster = services.create_vcluster(Actor(world.teammate), world.alpha, name="crash")

    eventually(
        lambda: vcluster.steps.filter(name=step, status=StepStatus.RUNNING).exists(),
        timeout=90, interval=0.05, what=f"step {step} running",
    )
    celery_worker.kill()
    celery_worker.start(**env)

    eventually(
        lambda: VCluster.objects.get(pk=vcluster.pk).phase == Phase.READY,
        timeout=120, interval=0.5, what="Ready after the restart",
    )
    vcluster.refresh_from_db()
    assert [s.status for s in vcluster.steps.all()] == [StepStatus.SUCCEEDED] * len(pipeline.PROVISION)

    host_kube = HostKube(host_cluster.admin_kubeconfig.read_text())
    owned = host_kube.find_labelled(f"{manifests.VCLUSTER_LABEL}={vcluster.pk}")
    assert len(owned) == len(set(owned))
    assert sum(1 for o in owned if o.startswith("Namespace ")) == 1
    counts = processes_under(var_dir / "vclusters" / str(vcluster.pk))
    assert sorted(exe for _, exe in counts) == sorted(
        ["kine", "kube-apiserver", "kube-controller-manager", os.path.basename(os.path.realpath(os.sys.executable))]
    )
    assert set(counts.values()) == {1}
