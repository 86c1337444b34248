#!/usr/bin/env python
"""The `kubernetes` runtime against the `local` one, in the same run on the same host.

    DATABASE_URL=postgres://… REDIS_URL=… DJANGO_SECRET_KEY=… FIELD_ENCRYPTION_KEYS=… \\
        .venv/bin/python benchmarks/kubernetes_runtime.py [--count 5]

As root (a real node). Starts its own host cluster with a real node and a real Celery
worker, in a throwaway database (vcportal_krbench), and registers the host twice: once
with the `kubernetes` runtime (control plane and syncer as a pod on the node, reached at
the node's address) and once with `local` (processes on this machine), each for a team
of its own. Then, alternating the two so both see the same machine:
  - create-to-Ready through the API (until the admin kubeconfig answers /readyz), median
    and p95 of --count each, after one warm-up each (the node pulls the image once);
  - memory per idle vcluster: the pod's working set from its cgroup (usage minus
    inactive file cache, as the kubelet counts it) beside the local processes' RSS;
  - delete-to-gone.
Targets: kubernetes create <= 1.5x local create; <= 300 MiB per vcluster.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
STATE = Path(tempfile.mkdtemp(prefix="krbench-"))
os.environ["VCPORTAL_VAR_DIR"] = str(STATE / "var")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from localkube import LocalCluster  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from provisioning_bench import Portal, row, start_worker, vcluster_rss  # noqa: E402

os.environ["VCPORTAL_VAR_DIR"] = str(settings.VAR_DIR)  # provisioning_bench set its own: the worker's must be ours

MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")


def pod_working_set_mib(uid: str) -> float:
    """The pod's memory cgroup (cgroup v1): usage minus inactive file pages."""
    matches = list(MEMORY_CGROUP.glob(f"**/pod{uid}"))
    if not matches:
        raise RuntimeError(f"no memory cgroup for pod {uid}")
    usage = int((matches[0] / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (matches[0] / "memory.stat").read_text().splitlines())
    return (usage - int(stat.get("total_inactive_file", 0))) / 2**20


def control_plane_pod_uid(host: LocalCluster, vcluster_id: int) -> str:
    from kubernetes import client

    from provisioning.runtimes import kubeobjects
    from provisioning.models import Placement

    ns = Placement.objects.get(vcluster_id=vcluster_id).host_namespace
    return client.CoreV1Api(host.api_client()).read_namespaced_pod(kubeobjects.POD, ns).metadata.uid


def step_medians(vcluster_ids: list[int]) -> list[tuple[str, float]]:
    """Where the time goes: each provisioning step's median duration, slowest first."""
    from vclusters.models import VClusterStep

    durations = {}
    for step in VClusterStep.objects.filter(vcluster_id__in=vcluster_ids):
        durations.setdefault(step.name, []).append((step.finished_at - step.started_at).total_seconds())
    return sorted(((name, statistics.median(d)) for name, d in durations.items()), key=lambda item: -item[1])[:4]


def setup_world(host: LocalCluster) -> dict[str, Portal]:
    from django.contrib.auth import get_user_model

    from accounts.audit import SYSTEM, Actor
    from accounts.models import Membership, Role, Team
    from accounts.services import create_token
    from provisioning.hostclusters import services

    user = get_user_model().objects.create_user("bench", is_staff=True)
    portals = {}
    for runtime in ("kubernetes", "local"):
        team = Team.objects.create(name=f"Bench {runtime}", slug=f"bench-{runtime}", max_vclusters=100,
                                   cpu_millicores=10**6, memory_bytes=2**50, storage_bytes=2**50, pods=10**6)
        Membership.objects.create(team=team, user=user, role=Role.ADMIN)
        services.register_host_cluster(
            SYSTEM, name=f"bench-{runtime}", kubeconfig=host.admin_kubeconfig.read_text(), runtime=runtime,
            access="nodeport", access_address=host.real_node().link.node_ip, teams=[team.slug])
        portals[runtime] = Portal(create_token(Actor(user), name=f"bench-{runtime}")[1], team=team.slug)
    return portals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to PostgreSQL: the worker and this script share the database")
    if os.geteuid() != 0:
        sys.exit("run as root: the host cluster needs a real node")
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    connection.settings_dict["TEST"]["NAME"] = "vcportal_krbench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    worker, host = None, LocalCluster(STATE / "host")
    try:
        host.init(name="krbench-host", nodes=1, real_nodes=1)
        host.start(timeout=240)
        portals = setup_world(host)
        worker = start_worker()
        for runtime, portal in portals.items():
            portal.create_to_ready(f"warm-{runtime[:4]}")
        created = {runtime: [] for runtime in portals}
        for i in range(args.count):
            for runtime, portal in portals.items():
                created[runtime].append(portal.create_to_ready(f"{runtime[:4]}-{i}"))
        time.sleep(20)  # idle: start-up caches settle
        memory = {
            "kubernetes": [pod_working_set_mib(control_plane_pod_uid(host, vc)) for vc, _ in created["kubernetes"]],
            "local": [vcluster_rss(vc) for vc, _ in created["local"]],
        }
        slowest = step_medians([vc for vc, _ in created["kubernetes"]])
        deletes = {runtime: [portals[runtime].delete_to_gone(vc) for vc, _ in created[runtime]] for runtime in portals}

        times = {runtime: [t for _, t in results] for runtime, results in created.items()}
        print(f"\nkubernetes vs local runtime: {args.count} vclusters each, one at a time, alternating\n")
        print(f"{'measure':<44}{'median':>10}{'p95':>10}{'target':>14}")
        row("create-to-Ready, kubernetes (s)", times["kubernetes"])
        row("create-to-Ready, local, same run (s)", times["local"])
        ratio = statistics.median(times["kubernetes"]) / statistics.median(times["local"])
        print(f"{'ratio (median kubernetes / median local)':<44}{ratio:>10.2f}{'':>10}{'<= 1.5':>14}")
        row("per vcluster: pod working set (MiB)", memory["kubernetes"], "<= 300", ".0f")
        row("per vcluster: local processes' RSS (MiB)", memory["local"], "", ".0f")
        row("delete-to-gone, kubernetes (s)", deletes["kubernetes"])
        row("delete-to-gone, local (s)", deletes["local"])
        print("\nkubernetes runtime, median per step (s): " + ", ".join(f"{k} {v:.2f}" for k, v in slowest))
    finally:
        if worker:
            worker.terminate()
            worker.wait(timeout=30)
        from provisioning import pipeline
        from vclusters import lifecycle
        from vclusters.models import VCluster

        for vcluster in VCluster.objects.exclude(phase=lifecycle.Phase.DELETED):
            lifecycle.transition(vcluster, lifecycle.Event.DELETE)
            pipeline.teardown(vcluster.pk)
        host.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
