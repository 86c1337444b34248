"""pytest fixtures for tests against real clusters (registered in tests/conftest.py).

Any test that uses them gets the `kube` marker, so `-m "not kube"` leaves them out.
They never skip: a missing binary fails the test with the hint to run `make kube`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from .binaries import bin_dir
from .cluster import LocalCluster

HOST_NODES = 2
CLUSTER_FIXTURES = {"host_cluster", "make_cluster", "real_host_cluster"}
REAL_NODE_FIXTURES = {"real_host_cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if CLUSTER_FIXTURES & fixtures:
            item.add_marker(pytest.mark.kube)
        if REAL_NODE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def host_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """One host cluster for the whole session: control plane, scheduler and
    HOST_NODES kwok nodes. Tests share it, so each works in namespaces of its own."""
    cluster = LocalCluster(tmp_path_factory.mktemp("host-cluster"))
    cluster.init(name="test-host", nodes=HOST_NODES)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def real_host_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """A host cluster whose pods really run: one real node (containerd, kubelet,
    kube-proxy, CoreDNS, the NetworkPolicy firewall) and one kwok node, tainted so that
    only pods that tolerate it land there. Shared by the session, like host_cluster."""
    cluster = LocalCluster(tmp_path_factory.mktemp("real-host-cluster"))
    cluster.init(name="test-real-host", nodes=1, real_nodes=1)
    try:
        cluster.start(timeout=240)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_cluster(tmp_path_factory) -> Iterator[Callable[..., LocalCluster]]:
    """Factory for extra clusters, stopped when the test ends. Without nodes a cluster
    is a bare control plane (kine, kube-apiserver, kube-controller-manager), the shape
    of a vcluster."""
    started: list[LocalCluster] = []

    def factory(name: str = "extra", nodes: int = 0, datastore: str = "", egress: bool = False) -> LocalCluster:
        cluster = LocalCluster(tmp_path_factory.mktemp(name))
        cluster.init(name=name, nodes=nodes, datastore=datastore, egress=egress)
        started.append(cluster)
        cluster.start()
        return cluster

    try:
        yield factory
    finally:
        for cluster in started:
            cluster.stop(discard=True)


def kubectl(kubeconfig, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the built kubectl binary against `kubeconfig`."""
    return subprocess.run(
        [str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=input, capture_output=True, text=True, check=check, timeout=60,
    )
