"""What other processes on the machine can reach of a local cluster (issue 8, items 2 and 7).

kine serves the etcd API without authentication, so whoever reaches it reads every
Secret of the cluster and writes any object. It must be reachable only through its
unix socket in the 0700 state directory: every TCP port the cluster holds open is
tried with an etcd read, and another user tries the socket. The components are
started by a process whose environment holds the portal's secrets; none may inherit
them.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from localkube import LocalCluster
from localkube.components import KINE_SOCKET
from localkube.processes import INHERITED

PORTAL_SECRETS = {
    "DJANGO_SECRET_KEY": "portal-secret-key",
    "FIELD_ENCRYPTION_KEYS": "portal-fernet-key",
    "DATABASE_URL": "postgres://portal:portal-password@127.0.0.1/portal",
    "REDIS_URL": "redis://:portal-password@127.0.0.1:6390/0",
}


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


# etcdserverpb.RangeRequest{key: "/registry/", range_end: "/registry0"}: every object
# the API server stored, as the API server itself asks kine for them.
RANGE_REGISTRY = grpc_frame(b"\x0a\x0a/registry/" + b"\x12\x0a/registry0")


def etcd_range(url: str, *curl_args: str, user: str | None = None) -> subprocess.CompletedProcess:
    """An etcd Range call over gRPC with curl, as any local program could send it."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "5", *curl_args, "-H", "content-type: application/grpc",
         "-H", "te: trailers", "--data-binary", "@-", f"{url}/etcdserverpb.KV/Range"],
        input=RANGE_REGISTRY, capture_output=True, timeout=30, user=user,
    )


def tcp_listeners(pids: dict[str, int]) -> dict[int, str]:
    """Port -> component, for every TCP socket in LISTEN state that a component holds."""
    owner_of_inode = {}
    for component, pid in pids.items():
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner_of_inode[target[len("socket:["):-1]] = component
    listeners = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_address, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in owner_of_inode:  # 0A: LISTEN
                listeners[int(local_address.rsplit(":", 1)[1], 16)] = owner_of_inode[inode]
    return listeners


@pytest.fixture(scope="module", params=[1, 0], ids=["host", "vcluster"])
def cluster(request):
    """A host cluster or a bare control plane (a vcluster's shape), started by a process
    whose environment holds the portal's secrets, in a directory other users may
    traverse: only the state directory's own mode stands between them and kine."""
    parent = Path(tempfile.mkdtemp(prefix="vcportal-access-"))
    parent.chmod(0o711)
    cluster = LocalCluster(parent / "cluster")
    try:
        cluster.init(name="access", nodes=request.param)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in PORTAL_SECRETS.items():
                patch.setenv(name, value)
            cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(parent)


@pytest.mark.kube
def test_no_component_inherits_the_portals_secrets(cluster):
    pids = cluster.pids()
    assert set(pids) == set(cluster.config.components)
    for component, pid in pids.items():
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
        assert not names & set(PORTAL_SECRETS), component
        assert not [v for v in PORTAL_SECRETS.values() if v.encode() in environ], component
        unexpected = {n for n in names if n not in INHERITED and not n.startswith("LC_")} - {"GOGC"}
        assert not unexpected, f"{component} got {unexpected}"
        assert "GOGC" in names, component  # what the launcher passes explicitly still arrives


@pytest.mark.kube
def test_the_datastore_answers_on_its_socket_only(cluster):
    socket_path = cluster.state_dir / KINE_SOCKET
    owner = etcd_range("http://kine", "--unix-socket", str(socket_path), "--http2-prior-knowledge")
    assert b"/registry/namespaces/default" in owner.stdout, owner.stderr  # the probe reads, when let in

    listeners = tcp_listeners(cluster.pids())
    assert listeners and "kine" not in listeners.values()
    for port, component in listeners.items():
        for attempt in (
            etcd_range(f"http://127.0.0.1:{port}", "--http2-prior-knowledge"),
            etcd_range(f"https://127.0.0.1:{port}", "--http2", "--insecure"),
        ):
            assert b"/registry/" not in attempt.stdout, f"{component} on port {port} served the datastore"


@pytest.mark.kube
def test_another_user_cannot_reach_the_socket(cluster):
    assert os.geteuid() == 0, "this test tries the socket as the user nobody, so it must run as root"
    socket_path = cluster.state_dir / KINE_SOCKET
    assert stat.S_ISSOCK(socket_path.stat().st_mode)
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cluster.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cluster.state_dir.parent.stat().st_mode) == 0o711  # nobody may pass the parent

    attempt = etcd_range("http://kine", "--unix-socket", str(socket_path), "--http2-prior-knowledge", user="nobody")
    assert attempt.returncode != 0
    assert b"/registry/" not in attempt.stdout
    assert b"Permission denied" in attempt.stderr or b"Couldn't connect" in attempt.stderr, attempt.stderr
