"""Personas and helpers for the portal's tests.

Personas, all in the team "alpha" unless said otherwise:
  owner     team admin of alpha
  teammate  member of alpha
  viewer    viewer of alpha
  outsider  admin of another team, "beta"; sees nothing of alpha
  staff     platform admin (is_staff), member of no team
"""

import threading
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections
from rest_framework.test import APIClient

from accounts.audit import Actor
from accounts.models import Membership, Role, Team
from accounts.services import create_token
from portal.celery import app as celery_app
from vclusters.models import VCluster

PASSWORD = "correct horse battery staple"
PERSONAS = ["anonymous", "outsider", "viewer", "teammate", "owner", "staff"]


def expect(anonymous, outsider, viewer, member, team_admin, staff) -> dict:
    """What each persona gets, in PERSONAS order."""
    return dict(zip(PERSONAS, [anonymous, outsider, viewer, member, team_admin, staff]))


def pytest_configure(config):
    # Tests serve static files through the finders; there is no collectstatic output.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


@pytest.fixture(autouse=True)
def _fast_and_eager(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    # Tasks run in-process once the transaction commits; no broker is needed.
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """An empty in-process cache per test: API throttle counts must not carry over."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


def make_team(slug: str, **quota) -> Team:
    return Team.objects.create(name=slug.title(), slug=slug, **quota)


# Shaped like a kubeconfig, pointing nowhere: for host cluster rows that no test connects to.
UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: not-a-real-token}}]
contexts: [{name: admin@nowhere, context: {cluster: nowhere, user: admin}}]
current-context: admin@nowhere
"""


def make_host(name: str, **fields):
    from provisioning.models import HostCluster

    return HostCluster.objects.create(name=name, kubeconfig=UNREACHABLE_KUBECONFIG, **fields)


def make_vcluster(team: Team, name: str, **fields) -> VCluster:
    spec = {"kubernetes_version": "v1.37.2", "cpu_millicores": 1000, "memory_bytes": 2**31,
            "storage_bytes": 10 * 2**30, "pods": 50, **fields}
    return VCluster.objects.create(team=team, name=name, **spec)


@dataclass
class World:
    alpha: Team
    beta: Team
    users: dict

    def __getattr__(self, name):
        try:
            return self.users[name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture
def world(db) -> World:
    alpha, beta = make_team("alpha"), make_team("beta")
    users = {name: make_user(name) for name in ["owner", "teammate", "viewer", "outsider"]}
    users["staff"] = make_user("staff", is_staff=True)
    Membership.objects.create(team=alpha, user=users["owner"], role=Role.ADMIN)
    Membership.objects.create(team=alpha, user=users["teammate"], role=Role.MEMBER)
    Membership.objects.create(team=alpha, user=users["viewer"], role=Role.VIEWER)
    Membership.objects.create(team=beta, user=users["outsider"], role=Role.ADMIN)
    return World(alpha, beta, users)


def token_for(user, name="test") -> str:
    return create_token(Actor(user, "127.0.0.1"), name=name)[1]


@pytest.fixture
def api(world):
    """api("owner") → an APIClient authenticated with a Bearer token of that persona."""

    def client(persona: str) -> APIClient:
        c = APIClient()
        if persona != "anonymous":
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(world.users[persona])}")
        return c

    return client



def post_in_parallel(token: str, paths_and_bodies: list[tuple[str, dict | None]]) -> list:
    """POST each (path, body) from its own thread, all released at once by a barrier,
    each with its own database connection; returns the responses in order. Callers
    run on PostgreSQL (see require_postgresql): SQLite serialises writers anyway."""
    start = threading.Barrier(len(paths_and_bodies))
    responses = [None] * len(paths_and_bodies)

    def post(i, path, body):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            start.wait()
            responses[i] = client.post(path, body, format="json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i, *pb)) for i, pb in enumerate(paths_and_bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def require_postgresql() -> None:
    """Concurrency guarantees are claimed for PostgreSQL, which `make test` runs: fail,
    never skip, when the suite is pointed elsewhere."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (DATABASE_URL), which `make test` provides")
