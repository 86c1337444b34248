"""`python manage.py hostcluster start|status|stop`, run as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localkube import LocalCluster
from localkube.binaries import kube_version
from localkube.processes import process_alive
from localkube.testing import kubectl

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "hostcluster", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=os.environ.copy(),
    )


@pytest.mark.kube
def test_start_prints_a_working_kubeconfig_and_stop_leaves_no_process(tmp_path):
    state = tmp_path / "host"
    started = manage("start", "--state-dir", str(state), "--nodes", "1")
    assert started.returncode == 0, started.stderr
    kubeconfig = started.stdout.strip().splitlines()[-1]
    assert Path(kubeconfig) == state / "admin.kubeconfig"

    try:
        assert kubectl(kubeconfig, "get", "--raw", "/readyz").stdout == "ok"
        version = json.loads(kubectl(kubeconfig, "version", "-o", "json").stdout)
        assert version["serverVersion"]["gitVersion"] == kube_version()
        nodes = kubectl(kubeconfig, "get", "nodes", "-o", "name").stdout.split()
        assert nodes == ["node/kwok-node-0"]

        status = manage("status", "--state-dir", str(state))
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("running (pid") == 5
        pids = list(LocalCluster(state).pids().values())
        assert len(pids) == 5

        again = manage("start", "--state-dir", str(state))  # idempotent while running
        assert again.returncode == 0 and again.stdout.strip().endswith("admin.kubeconfig")
        assert sorted(LocalCluster(state).pids().values()) == sorted(pids)
    finally:
        stopped = manage("stop", "--state-dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for pid in pids if process_alive(pid)]
    after = manage("status", "--state-dir", str(state))
    assert after.returncode != 0 and "stopped" in after.stdout


def test_start_refuses_zero_nodes_with_a_readable_message(tmp_path):
    result = manage("start", "--state-dir", str(tmp_path / "h"), "--nodes", "0")
    assert result.returncode != 0
    assert "--nodes must be at least 1" in result.stderr
    assert not (tmp_path / "h").exists()
