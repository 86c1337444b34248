#!/usr/bin/env python
"""Provisioning benchmark: what a user waits for, and what a vcluster costs.

    DATABASE_URL=postgres://… REDIS_URL=… DJANGO_SECRET_KEY=… FIELD_ENCRYPTION_KEYS=… \\
        .venv/bin/python benchmarks/provisioning_bench.py [--sequential 5] [--idle 20]

Starts its own host cluster (kwok nodes) and a real Celery worker, in a throwaway
database (vcportal_provbench) and state directory, then measures:
  - create-to-Ready: from the API call until the downloaded kubeconfig answers /readyz,
    for --sequential vclusters one after another and 5 created at once;
  - the bare control-plane start (localkube, no portal) in the same run, and the ratio;
  - delete-to-gone: from the API call until the vcluster is Deleted (host namespace
    gone, processes stopped, state removed, verified);
  - --idle vclusters running at once: all answer /readyz, and the RSS each costs.
Targets on 2 cores: create-to-Ready median <= 5 s, p95 <= 10 s; overhead <= 1.3x the
bare start; teardown <= 10 s; at least 20 idle vclusters at once.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
STATE = Path(tempfile.mkdtemp(prefix="provbench-"))
os.environ["VCPORTAL_VAR_DIR"] = str(STATE / "var")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
import yaml  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from localkube import LocalCluster  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from controlplane_bench import memory_mib, percentile  # noqa: E402


def readyz(kubeconfig: str) -> bool:
    """True once the kubeconfig's server answers /readyz for its user."""
    doc = yaml.safe_load(kubeconfig)
    import base64

    user, cluster = doc["users"][0]["user"], doc["clusters"][0]["cluster"]
    files = {}
    for key, data in (("crt", user["client-certificate-data"]), ("key", user["client-key-data"]),
                      ("ca", cluster["certificate-authority-data"])):
        path = STATE / f"probe-{threading.get_ident()}.{key}"
        path.write_bytes(base64.b64decode(data))
        files[key] = str(path)
    try:
        return requests.get(f"{cluster['server']}/readyz", cert=(files["crt"], files["key"]),
                            verify=files["ca"], timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Portal:
    def __init__(self, token: str, team: str = "bench"):
        self.token, self.team = token, team

    def client(self) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return api

    def create_to_ready(self, name: str) -> tuple[int, float]:
        api = self.client()
        start = time.perf_counter()
        response = api.post("/api/v1/vclusters/", {"team": self.team, "name": name}, format="json")
        assert response.status_code == 201, response.content
        vcluster_id = response.json()["id"]
        while True:
            phase = api.get(f"/api/v1/vclusters/{vcluster_id}/").json()["phase"]
            if phase == "Failed":
                raise RuntimeError(f"{name} failed: {api.get(f'/api/v1/vclusters/{vcluster_id}/').json()['message']}")
            if phase == "Ready":
                break
            time.sleep(0.05)
        # The portal's admin kubeconfig: the API hands people gateway kubeconfigs, and
        # no gateway runs here.
        from vclusters.models import VCluster

        kubeconfig = VCluster.objects.get(pk=vcluster_id).kubeconfig
        while not readyz(kubeconfig):
            time.sleep(0.05)
        return vcluster_id, time.perf_counter() - start

    def delete_to_gone(self, vcluster_id: int) -> float:
        api = self.client()
        start = time.perf_counter()
        assert api.delete(f"/api/v1/vclusters/{vcluster_id}/").status_code == 202
        while api.get(f"/api/v1/vclusters/{vcluster_id}/").json()["phase"] != "Deleted":
            time.sleep(0.05)
        return time.perf_counter() - start


def in_parallel(portal: Portal, names: list[str]) -> list[tuple[int, float]]:
    results, threads = {}, []
    for name in names:
        thread = threading.Thread(target=lambda n=name: results.__setitem__(n, portal.create_to_ready(n)))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return [results[n] for n in names]


def bare_starts(count: int) -> list[float]:
    times = []
    for i in range(count):
        cluster = LocalCluster(STATE / f"bare-{i}")
        start = time.perf_counter()
        cluster.init(name=f"bare-{i}")
        cluster.start()
        times.append(time.perf_counter() - start)
        cluster.stop()
    return times


def vcluster_rss(vcluster_id: int) -> float:
    """MiB of all processes of a vcluster: control plane and syncer."""
    base = Path(settings.VAR_DIR) / "vclusters" / str(vcluster_id)
    total = 0.0
    for pid_file in base.rglob("*.pid"):
        pid = int(pid_file.read_text().split()[0])
        total += memory_mib(pid).get("VmRSS", 0)
    return total


def setup_world() -> str:
    from django.contrib.auth import get_user_model

    from accounts.audit import SYSTEM, Actor
    from accounts.models import Membership, Role, Team
    from accounts.services import create_token
    from provisioning.hostclusters import services

    user = get_user_model().objects.create_user("bench", is_staff=True)
    team = Team.objects.create(name="Bench", slug="bench", max_vclusters=100, cpu_millicores=10**6,
                               memory_bytes=2**50, storage_bytes=2**50, pods=10**6)
    Membership.objects.create(team=team, user=user, role=Role.ADMIN)
    host = LocalCluster(STATE / "host")
    host.init(name="bench-host", nodes=2)
    host.start()
    services.register_host_cluster(SYSTEM, name="bench-host", kubeconfig=host.admin_kubeconfig.read_text(),
                                   runtime="local")
    return create_token(Actor(user), name="bench")[1], host


def start_worker() -> subprocess.Popen:
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    log = open(STATE / "worker.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "threads", "--concurrency", "8",
         "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def row(label: str, values: list[float], target: str = "", fmt: str = ".2f") -> None:
    print(f"{label:<44}{statistics.median(values):>10{fmt}}{percentile(values, 95):>10{fmt}}{target:>14}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=5)
    parser.add_argument("--idle", type=int, default=20)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to PostgreSQL: the worker and this script share the database")
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    connection.settings_dict["TEST"]["NAME"] = "vcportal_provbench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    worker, host = None, None
    try:
        token, host = setup_world()
        worker = start_worker()
        portal = Portal(token)
        portal.create_to_ready("warm-up")  # the worker's first task loads its imports
        sequential = [portal.create_to_ready(f"seq-{i}") for i in range(args.sequential)]
        parallel = in_parallel(portal, [f"par-{i}" for i in range(5)])
        bare = bare_starts(args.sequential)
        deletes = [portal.delete_to_gone(vc) for vc, _ in sequential]

        running = [vc for vc, _ in parallel]
        running.append(1)  # the warm-up vcluster
        extra = max(args.idle - len(running), 0)
        for batch in range(0, extra, 5):
            names = [f"idle-{i}" for i in range(batch, min(batch + 5, extra))]
            running += [vc for vc, _ in in_parallel(portal, names)]
        time.sleep(20)
        from vclusters.models import VCluster

        answering = sum(readyz(VCluster.objects.get(pk=vc).kubeconfig) for vc in running)
        rss = [vcluster_rss(vc) for vc in running]
        seq_times = [t for _, t in sequential]
        par_times = [t for _, t in parallel]

        print(f"\nprovisioning: {args.sequential} sequential, 5 parallel, {len(running)} idle at once\n")
        print(f"{'measure':<44}{'median':>10}{'p95':>10}{'target':>14}")
        row("create-to-Ready, one at a time (s)", seq_times, "<= 5 / <= 10")
        row("create-to-Ready, 5 at once (s)", par_times, "<= 5 / <= 10")
        row("bare control-plane start, same run (s)", bare)
        print(f"{'portal overhead (median create / median bare)':<44}"
              f"{statistics.median(seq_times) / statistics.median(bare):>10.2f}{'':>10}{'<= 1.3':>14}")
        row("delete-to-gone (s)", deletes, "<= 10")
        row("RSS per idle vcluster, with syncer (MiB)", rss, "", ".0f")
        print(f"{'idle vclusters answering /readyz at once':<44}{answering:>10}{'':>10}{'>= 20':>14}")
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
        if host:
            host.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
