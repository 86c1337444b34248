"""The web process restarted while people work (issue 20): pages, API and gateway are
one ASGI application, so a restart ends every open kubectl session at once. What must
hold: an open `kubectl exec` ends with an error rather than hanging, a download during
the restart is refused rather than half-served, the kubeconfigs issued before it keep
working after it, and no access record is lost. uvicorn runs in a process of its own,
over TLS, as `make run` runs it, on the real node (the pod really runs)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from accounts.audit import Actor
from accounts.services import create_token
from gateway.models import AccessRecord
from gateway.tls import ensure_certificate
from localkube.binaries import bin_dir
from provisioning.rbac import ensure_access_bindings
from tests.kube.helpers import run_pod
from tests.portal.conftest import make_vcluster
from tests.provisioning.conftest import portal_database_url
from tests.syncer.conftest import make_real_vcluster  # noqa: F401  (fixture)
from vclusters.models import Phase

from .conftest import wait_for
from .test_kubectl import kubeconfig_for, run

pytestmark = [pytest.mark.realnode, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
GRACE = 3  # --timeout-graceful-shutdown: how long open connections get to finish


class WebProcess:
    """`uvicorn portal.asgi:application` over TLS on a fixed port, so it can restart."""

    def __init__(self, tls: dict, tmp_path: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url, self.ca, self.log = f"https://127.0.0.1:{port}", str(tls["ca.crt"]), tmp_path / "web.log"
        self.argv = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--ws", "websockets",
                     "--host", "127.0.0.1", "--port", str(port), "--ssl-certfile", str(tls["tls.crt"]),
                     "--ssl-keyfile", str(tls["tls.key"]), "--timeout-graceful-shutdown", str(GRACE)]
        self.env = {**os.environ, "DATABASE_URL": portal_database_url(), "VCPORTAL_VAR_DIR": str(tmp_path),
                    "VCPORTAL_GATEWAY_CA_FILE": self.ca, "VCPORTAL_GATEWAY_FLUSH_INTERVAL": "0.2"}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{self.url}/api/schema/", verify=self.ca, timeout=2)
                return
            except requests.ConnectionError:
                assert time.monotonic() < deadline and self.process.poll() is None, self.log.read_text()[-2000:]
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, as `make run`, docker-compose and Kubernetes stop it."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=GRACE + 30)


def download(web: WebProcess, vcluster, token: str) -> requests.Response:
    return requests.get(f"{web.url}/api/v1/vclusters/{vcluster.pk}/kubeconfig/", verify=web.ca, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def test_a_restart_ends_sessions_cleanly_and_keeps_kubeconfigs_and_records(world, make_real_vcluster,  # noqa: F811
                                                                           settings, tmp_path):
    synced = make_real_vcluster("restart")
    ensure_access_bindings(synced.kubeconfig.read_text())
    vcluster = make_vcluster(world.alpha, "restart", phase=Phase.READY, kubeconfig=synced.kubeconfig.read_text())
    run_pod(synced.cluster, "default", "app", "sleep 3600")
    tls = ensure_certificate(tmp_path / "gateway-tls")
    settings.VCPORTAL_GATEWAY_CA_FILE = str(tls["ca.crt"])
    web = WebProcess(tls, tmp_path)
    web.start()
    try:
        kubeconfig = kubeconfig_for(world.teammate, vcluster, web, tmp_path)
        session = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "exec", "-i", "app",
                                    "--", "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        session.stdin.write("before the restart\n")
        session.stdin.flush()
        assert session.stdout.readline() == "before the restart\n"
        api_token = create_token(Actor(world.teammate), name="restart")[1]

        web.stop()
        with pytest.raises(requests.ConnectionError):
            download(web, vcluster, api_token)
        _, stderr = session.communicate(timeout=30)  # ended with the process, not hanging
        assert session.returncode != 0, stderr
        web.start()

        assert run(kubeconfig, "exec", "app", "--", "echo", "after the restart") == "after the restart\n"
        fresh = tmp_path / "fresh.kubeconfig"
        response = download(web, vcluster, api_token)
        assert response.status_code == 200, response.text
        fresh.write_text(response.text)
        assert run(str(fresh), "get", "pod", "app", "-o", "name") == "pod/app\n"
        wait_for(lambda: AccessRecord.objects.filter(vcluster=vcluster, subresource="exec").count() == 2,
                 what="both exec sessions in the access log")
    finally:
        web.stop()
