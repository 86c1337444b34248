"""Running the real `vcp` in a subprocess against a live portal (real HTTP).

Each test gets its own HOME (so ~/.kube/config is its own) and vcp config file, and
an environment with none of the portal's secrets: the CLI needs only the URL and token.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.conftest import gateway_server  # noqa: F401  (fixture)
from tests.portal.conftest import _fresh_cache, token_for, world  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


class Vcp:
    def __init__(self, home: Path, config: Path, path: str):
        self.home, self.config = home, config
        self.env = {"HOME": str(home), "VCP_CONFIG": str(config), "PATH": path, "PYTHONPATH": str(ROOT),
                    "LANG": "C.UTF-8"}

    def __call__(self, *args: str, input: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
        """Run `vcp ARGS`; fail unless it exits with `code`."""
        result = subprocess.run([sys.executable, "-m", "vcp", *args], env=self.env, cwd=self.home, input=input,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == code, f"vcp {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def login(self, url: str, token: str) -> subprocess.CompletedProcess:
        return self("login", url, "--token-stdin", input=f"{token}\n")

    def kubectl(self, *args: str) -> str:
        """kubectl as the user would run it: with ~/.kube/config and its current context."""
        result = subprocess.run(["kubectl", *args], env=self.env, cwd=self.home, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def vcp(tmp_path) -> Vcp:
    home = tmp_path / "home"
    home.mkdir()
    return Vcp(home, tmp_path / "vcp-config" / "config.yaml", os.environ["PATH"])


@pytest.fixture
def logged_in(vcp, gateway_server, world):  # noqa: F811
    """login(persona) → vcp logged in as that persona to the live portal as `make run`
    serves it to kubectl: the ASGI application (pages, API, gateway) under uvicorn over
    TLS with a private CA, which vcp trusts and personal kubeconfigs carry."""
    vcp.env["REQUESTS_CA_BUNDLE"] = gateway_server.ca

    def login(persona: str) -> Vcp:
        vcp.login(gateway_server.url, token_for(world.users[persona]))
        return vcp

    return login
