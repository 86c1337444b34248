"""Personas (tests/portal/conftest.py) and vclusters for the gateway's tests."""

import threading
import time

import pytest
import uvicorn

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


class GatewayServer:
    """The portal's ASGI application (Django + gateway) under uvicorn, in a thread of
    the test process, on a free port of 127.0.0.1, over TLS with a private CA
    (kubectl sends tokens over HTTPS only)."""

    def __init__(self, tls: dict):
        from django.core.asgi import get_asgi_application

        from gateway.asgi import Router

        self.ca = str(tls["ca.crt"])
        self.app = Router(get_asgi_application())
        # ws="websockets", as the portal is served: uvicorn's default (websockets-sansio)
        # refuses kubectl's port-forward WebSocket handshake.
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="on", ws="websockets",
                                log_level="info", ssl_certfile=str(tls["tls.crt"]), ssl_keyfile=str(tls["tls.key"]))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        self.url = "https://127.0.0.1:%d" % self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def gateway_server(transactional_db, settings, tmp_path):
    from gateway.tls import ensure_certificate

    tls = ensure_certificate(tmp_path / "gateway-tls")
    settings.VCPORTAL_GATEWAY_FLUSH_INTERVAL = 0.2
    settings.VCPORTAL_GATEWAY_CA_FILE = str(tls["ca.crt"])
    server = GatewayServer(tls)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def vcluster_control_plane(make_cluster):
    """A real control plane, with the access bindings applied as the provisioning step does."""
    from provisioning.rbac import ensure_access_bindings

    cluster = make_cluster("gw-vc")
    ensure_access_bindings(cluster.admin_kubeconfig.read_text())
    return cluster


@pytest.fixture
def vcluster(world, vcluster_control_plane):  # noqa: F811
    """A Ready vcluster of team alpha on that control plane."""
    kubeconfig = vcluster_control_plane.admin_kubeconfig.read_text()
    return make_vcluster(world.alpha, "web", phase=Phase.READY, kubeconfig=kubeconfig)


def wait_for(predicate, timeout: float = 20, what: str = "condition"):
    """Poll until predicate() is truthy (the gateway writes attribution in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
