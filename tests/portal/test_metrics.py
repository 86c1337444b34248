"""/metrics (portal.metrics, docs/metrics.md): what it counts, who may read it, and that
uvicorn's processes add up; and the steps' durations the worker records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from localkube.ports import allocate
from portal.asgi import application
from provisioning import pipeline
from tests.kube.helpers import eventually
from tests.portal.conftest import make_vcluster
from vclusters.models import Phase

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple, float]:
    """(name, sorted labels) -> value of every sample in an exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(path: str, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, str]:
    """GET through the whole ASGI application, as uvicorn would hand it the request."""
    return async_to_sync(_asgi_get)(path, headers)


async def _asgi_get(path: str, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, str]:
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "scheme": "http", "http_version": "1.1", "asgi": {"version": "3.0"}}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return start["status"], body.decode()


@pytest.mark.django_db(transaction=True)
def test_metrics_count_vclusters_by_phase_and_requests_by_surface(world):
    for name, phase in (("a", Phase.READY), ("b", Phase.READY), ("c", Phase.FAILED)):
        make_vcluster(world.alpha, name, phase=phase)
    before = REGISTRY.get_sample_value("vcportal_http_requests_total",
                                       {"surface": "api", "method": "GET", "status": "401"}) or 0
    assert (_get("/api/v1/teams/"))[0] == 401

    status, text = _get("/metrics")
    assert status == 200
    found = samples(text)
    assert found[("vcportal_vclusters", (("phase", "Ready"),))] == 2
    assert found[("vcportal_vclusters", (("phase", "Failed"),))] == 1
    assert found[("vcportal_vclusters", (("phase", "Pending"),))] == 0
    assert ("vcportal_queue_depth", (("queue", "celery"),)) in found
    assert found[("vcportal_http_requests_total", (("method", "GET"), ("status", "401"), ("surface", "api")))] \
        == before + 1


@pytest.mark.django_db(transaction=True)
def test_with_a_token_set_metrics_answer_only_to_it(settings):
    settings.VCPORTAL_METRICS_TOKEN = "s3cret-metrics-token"
    assert (_get("/metrics"))[0] == 401
    assert (_get("/metrics", [(b"authorization", b"Bearer wrong")]))[0] == 401
    status, text = _get("/metrics", [(b"authorization", b"Bearer s3cret-metrics-token")])
    assert status == 200 and "vcportal_vclusters" in text


def test_uvicorns_processes_add_up_their_counts(tmp_path):
    """Processes sharing PROMETHEUS_MULTIPROC_DIR, as uvicorn's workers do: /metrics, answered by
    either, counts every request both served. Two servers on two ports rather than `--workers 2`,
    whose shared socket lets the kernel hand every connection to one process."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "VCPORTAL_VAR_DIR": str(tmp_path),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "VCPORTAL_METRICS_TOKEN": ""}
    (tmp_path / "metrics").mkdir()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    ports = allocate(["first", "second"])
    servers = [subprocess.Popen([sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for port in ports.values()]
    first, second = (f"http://127.0.0.1:{port}" for port in ports.values())
    try:
        for url in (first, second):
            eventually(lambda: _answers(f"{url}/healthz"), timeout=60, what="uvicorn serving")
        before = _served(first)
        for url, times in ((first, 7), (second, 13)):
            for _ in range(times):
                assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert _served(second) == before + 20
        assert _served(first) == before + 20
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    assert len({p.name.rsplit("_", 1)[1] for p in (tmp_path / "metrics").iterdir()
                if p.name.startswith("counter_")}) == 2


def _served(url: str) -> float:
    return samples(requests.get(f"{url}/metrics", timeout=5).text).get(
        ("vcportal_http_requests_total", (("method", "GET"), ("status", "200"), ("surface", "pages"))), 0)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.django_db
def test_each_step_run_is_timed_with_its_outcome(world):
    vcluster = make_vcluster(world.alpha, "timed")

    def count(step: str, outcome: str) -> float:
        return REGISTRY.get_sample_value("vcportal_step_duration_seconds_count", {"step": step, "outcome": outcome}) or 0

    def fails(kind):
        def ensure(ctx):
            raise kind("not now")
        return ensure

    ctx = pipeline.Context(vcluster)
    cases = [("Test succeeds", lambda ctx: None, "succeeded", None),
             ("Test retries", fails(pipeline.Transient), "retrying", pipeline.Transient),
             ("Test fails", fails(pipeline.Permanent), "failed", pipeline.Permanent)]
    for name, ensure, outcome, raised in cases:
        before = count(name, outcome)
        if raised:
            with pytest.raises(raised):
                pipeline._run(ctx, pipeline.Step(name, ensure))
        else:
            pipeline._run(ctx, pipeline.Step(name, ensure))
        assert count(name, outcome) == before + 1, (name, outcome)
