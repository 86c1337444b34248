"""Personas (tests/portal/conftest.py) and vclusters for the gateway's tests."""

import pytest

from accounts.audit import Actor
from tests.portal.conftest import _fast_and_eager, api, make_vcluster, world  # noqa: F401  (fixtures)
from vclusters.models import Phase

# Shaped like a stored admin kubeconfig; no test connects to it.
ADMIN_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: vc, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: admin, user: {token: not-a-real-token}}]
contexts: [{name: admin@vc, context: {cluster: vc, user: admin}}]
current-context: admin@vc
"""


@pytest.fixture
def ready(world):  # noqa: F811
    """A Ready vcluster of team alpha."""
    return make_vcluster(world.alpha, "web", phase=Phase.READY, kubeconfig=ADMIN_KUBECONFIG)


def actor(user) -> Actor:
    return Actor(user, "127.0.0.1")
