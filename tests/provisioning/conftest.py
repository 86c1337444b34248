"""Fixtures for provisioning against the real host cluster (localkube.testing).

Host pods run on kwok's fake nodes: they reach Running with an IP but no container
starts, and no CNI enforces the NetworkPolicies. These tests prove what the API
servers do (admission, quota, RBAC, authentication), not what a kubelet would.
"""

import pytest

from provisioning import hosts, pipeline
from tests.portal.conftest import make_vcluster, world  # noqa: F401  (personas)
from vclusters.models import Phase, VCluster


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


@pytest.fixture
def host(db, host_cluster):
    host, _ = hosts.register("test-host", host_cluster.admin_kubeconfig.read_text())
    return host


@pytest.fixture
def provisioned(world, host, var_dir):  # noqa: F811
    """provisioned(name, team=alpha, **fields): a vcluster run through the pipeline in
    this process (no Celery); torn down at the end of the test."""
    created = []

    def make(name: str, team=None, **fields) -> VCluster:
        vcluster = make_vcluster(team or world.alpha, name, **fields)
        created.append(vcluster.pk)
        pipeline.provision(vcluster.pk)
        vcluster.refresh_from_db()
        return vcluster

    yield make
    for pk in created:
        VCluster.objects.filter(pk=pk).exclude(phase=Phase.DELETED).update(phase=Phase.DELETING)
        pipeline.teardown(pk)
