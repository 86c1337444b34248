"""Faults while the portal works (issue 20): Redis, PostgreSQL and the host cluster's
API server go away and come back, and the var directory's disk fills, while a real
Celery worker provisions or tears down.
After each, every vcluster reaches the phase it was heading for, with one audit row
per change and one charge against its team's quota, and a torn-down vcluster leaves
nothing on the host. The API keeps answering meanwhile: 2xx, or 503 with Retry-After
while the database itself is gone, never 500.

The worker runs beat's periodic reconcile every 5 s (the celery_worker fixture), which
is what brings back work a broker restart lost. The host is the kwok host cluster with
the `local` runtime: this proves the portal's recovery, not a kubelet's (pods on kwok
nodes do not run); the real node's own faults are tested with the real node."""

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from accounts import resources
from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.services import create_token
from provisioning import manifests
from provisioning.hostkube import HostKube
from tests.disk import fill, small_disk
from tests.kube.helpers import eventually
from vclusters import services
from vclusters.models import Phase, StepStatus, VCluster

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
# Each step pauses after its effect, so a fault lands in the middle of the work.
SLOW_STEPS = {"VCPORTAL_FAULT_PAUSE_AFTER_STEP": "0.5"}


def services_sh(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "services.sh"), *args], check=True, capture_output=True, timeout=120)


@contextmanager
def redis_down():
    """The test Redis (broker and cache) shut down without saving, as a crash loses its
    queue; started again by the project's script on the way out."""
    port = settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0]
    env = {**os.environ, "VCPORTAL_REDIS_PORT": port}
    subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run([str(ROOT / "scripts" / "services.sh"), "redis"], env=env, check=True, capture_output=True,
                       timeout=120)


@contextmanager
def postgres_down():
    """PostgreSQL stopped at once (its clients dropped), started again on the way out.
    This process's own connection dies with it: it is closed, so the next query opens
    a new one."""
    services_sh("stop-postgres")
    try:
        yield
    finally:
        services_sh("postgres")
        connection.close()


@contextmanager
def host_api_server_down(cluster):
    """The host cluster's kube-apiserver stopped, then started again by its launcher."""
    cluster.processes.stop("kube-apiserver")
    try:
        yield
    finally:
        cluster.start()


def api_as(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(Actor(user), name='faults')[1]}")
    return client


def wait_for_phase(pk: int, phase: Phase, timeout: float = 180) -> VCluster:
    return eventually(lambda: VCluster.objects.filter(pk=pk, phase=phase).first(), timeout=timeout, interval=0.5,
                      what=f"vcluster {pk} {phase}")


def wait_until_working(pk: int) -> None:
    eventually(lambda: VCluster.objects.get(pk=pk).steps.filter(status=StepStatus.RUNNING).exists(), timeout=90,
               interval=0.05, what=f"a step of vcluster {pk} running")


def owned_on_host(cluster, pk: int) -> list[str]:
    return HostKube(cluster.admin_kubeconfig.read_text()).find_labelled(f"{manifests.VCLUSTER_LABEL}={pk}")


def assert_accounted_once(team, pks: list[int], cluster) -> None:
    """One create in the audit log per vcluster, its team charged once for each, and one
    host namespace each."""
    for pk in pks:
        assert AuditEvent.objects.filter(action="vcluster.create", target_id=str(pk)).count() == 1
        assert sum(1 for o in owned_on_host(cluster, pk) if o.startswith("Namespace ")) == 1
    vclusters = list(VCluster.objects.filter(team=team))
    assert sorted(v.pk for v in vclusters) == sorted(pks)
    charged = {r.field: sum(getattr(v, r.field) for v in vclusters) for r in resources.RESOURCES}
    assert team.usage() == {"max_vclusters": len(pks), **charged}


def delete_and_wait(actor, pks: list[int], cluster) -> None:
    for pk in pks:
        services.delete_vcluster(actor, VCluster.objects.get(pk=pk))
    for pk in pks:
        wait_for_phase(pk, Phase.DELETED)
        assert owned_on_host(cluster, pk) == []
        assert AuditEvent.objects.filter(action="vcluster.delete", target_id=str(pk)).count() == 1


def test_redis_restarted_mid_create(world, host, host_cluster, celery_worker):
    """Redis is the broker (its queued and unacknowledged tasks are lost with it, as in
    `make run`, which keeps no Redis data) and the API throttles' cache. The worker may
    die of the outage (kombu 5.7, see scripts/supervise.sh): it runs supervised, as in
    `make run` and production."""
    celery_worker.start(supervised=True, **SLOW_STEPS)
    first = services.create_vcluster(Actor(world.teammate), world.alpha, name="first")
    wait_until_working(first.pk)
    api = api_as(world.teammate)

    with redis_down():
        assert api.get("/api/v1/vclusters/").status_code == 200  # throttles pause, reads go on
        created = api.post("/api/v1/vclusters/", {"team": "alpha", "name": "second"}, format="json")
        assert created.status_code == 201, created.data  # committed; its task waits for the reconcile
        time.sleep(3)

    second = created.data["id"]
    for pk in (first.pk, second):
        wait_for_phase(pk, Phase.READY)
    assert_accounted_once(world.alpha, [first.pk, second], host_cluster)

    delete_and_wait(Actor(world.teammate), [first.pk], host_cluster)
    with redis_down():  # a teardown in flight
        services.delete_vcluster(Actor(world.teammate), VCluster.objects.get(pk=second))
        time.sleep(3)
    wait_for_phase(second, Phase.DELETED)
    assert owned_on_host(host_cluster, second) == []


def test_postgres_restarted_mid_create(world, host, host_cluster, celery_worker):
    """The worker's steps lose their database mid-work and retry; requests made while it
    is gone answer 503 with Retry-After and change nothing."""
    celery_worker.start(**SLOW_STEPS)
    first = services.create_vcluster(Actor(world.teammate), world.alpha, name="first")
    wait_until_working(first.pk)
    token = create_token(Actor(world.teammate), name="faults")[1]

    with postgres_down():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        for answer in (client.get("/api/v1/vclusters/"),
                       client.post("/api/v1/vclusters/", {"team": "alpha", "name": "lost"}, format="json")):
            assert (answer.status_code, answer["Retry-After"], answer.data["code"]) == (503, "2", "busy")
        time.sleep(3)
    connection.close()

    wait_for_phase(first.pk, Phase.READY)
    assert not VCluster.objects.filter(name="lost").exists()
    assert_accounted_once(world.alpha, [first.pk], host_cluster)

    services.delete_vcluster(Actor(world.teammate), VCluster.objects.get(pk=first.pk))
    eventually(lambda: VCluster.objects.get(pk=first.pk).steps.filter(status=StepStatus.RUNNING).exists(),
               timeout=60, interval=0.05, what="teardown working")
    with postgres_down():
        time.sleep(3)
    wait_for_phase(first.pk, Phase.DELETED)
    assert owned_on_host(host_cluster, first.pk) == []


def test_host_api_server_restarted_during_provisioning_and_teardown(world, host, host_cluster, celery_worker):
    celery_worker.start(**SLOW_STEPS)
    vcluster = services.create_vcluster(Actor(world.teammate), world.alpha, name="hostdown")
    wait_until_working(vcluster.pk)
    with host_api_server_down(host_cluster):
        time.sleep(5)
    wait_for_phase(vcluster.pk, Phase.READY)
    assert_accounted_once(world.alpha, [vcluster.pk], host_cluster)

    services.delete_vcluster(Actor(world.teammate), VCluster.objects.get(pk=vcluster.pk))
    eventually(lambda: VCluster.objects.get(pk=vcluster.pk).steps.filter(status=StepStatus.RUNNING).exists(),
               timeout=60, interval=0.05, what="teardown working")
    with host_api_server_down(host_cluster):
        time.sleep(5)
    wait_for_phase(vcluster.pk, Phase.DELETED)
    assert owned_on_host(host_cluster, vcluster.pk) == []


def test_a_full_var_disk_fails_provisioning_readably_and_retry_finishes(world, host, host_cluster, celery_worker,
                                                                        var_dir):
    """The local runtime keeps each control plane's state (certificates, kine's database,
    logs) in the var directory. A full disk fails the step that writes there, with the
    system's words; once there is room, Retry finishes from that step."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with small_disk(var_dir, size="64m"):
        celery_worker.start()
        filler = fill(var_dir)
        vcluster = services.create_vcluster(Actor(world.teammate), world.alpha, name="full")
        failed = wait_for_phase(vcluster.pk, Phase.FAILED, timeout=120)
        step = failed.steps.get(status=StepStatus.FAILED)
        assert "No space left on device" in step.message, step.message

        filler.unlink()
        services.retry_vcluster(Actor(world.teammate), failed)
        wait_for_phase(vcluster.pk, Phase.READY)
        assert_accounted_once(world.alpha, [vcluster.pk], host_cluster)
        delete_and_wait(Actor(world.teammate), [vcluster.pk], host_cluster)
        celery_worker.stop()
