"""The management cluster for the GitOps tests: the session's host cluster, registered
as a host cluster and named by VCPORTAL_GITOPS_CLUSTER. Each test works in namespaces
of its own and leaves none behind, nor a vcluster."""

import json
import uuid

import pytest
import yaml

from gitops import crd
from localkube.testing import kubectl
from provisioning import pipeline
from provisioning.hostkube import HostKube
from tests.portal.conftest import _fast_and_eager, world  # noqa: F401  (eager tasks, personas)
from tests.provisioning.conftest import celery_worker, host, var_dir  # noqa: F401
from vclusters.models import Phase, VCluster


def virtual_cluster(name: str, namespace: str, **spec) -> str:
    return yaml.safe_dump({"apiVersion": crd.API_VERSION, "kind": crd.KIND,
                           "metadata": {"name": name, "namespace": namespace}, "spec": spec})


class Management:
    def __init__(self, cluster):
        self.kubeconfig = cluster.admin_kubeconfig
        self.kube = HostKube(self.kubeconfig.read_text())
        self.namespaces: list[str] = []

    def kubectl(self, *args, input=None, check=True):
        return kubectl(self.kubeconfig, *args, input=input, check=check)

    def namespace(self, team: str | None = None) -> str:
        name = f"gitops-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        self.namespaces.append(name)
        if team:
            self.map(name, team)
        return name

    def map(self, namespace: str, team: str) -> None:
        self.kubectl("label", "--overwrite", "namespace", namespace, f"{crd.TEAM_LABEL}={team}")

    def apply(self, name: str, namespace: str, **spec):
        return self.kubectl("apply", "-f", "-", input=virtual_cluster(name, namespace, **spec), check=False)

    def get(self, name: str, namespace: str) -> dict | None:
        found = self.kubectl("get", f"{crd.PLURAL}.{crd.GROUP}", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(found.stdout) if found.returncode == 0 else None

    def conditions(self, name: str, namespace: str) -> dict:
        return {c["type"]: c for c in self.get(name, namespace)["status"]["conditions"]}

    def cleanup(self) -> None:
        """Nothing may hold a namespace of the shared cluster: drop our finalizers first."""
        for namespace in self.namespaces:
            listed = self.kubectl("get", crd.PLURAL, "-n", namespace, "-o", "name", check=False).stdout.split()
            for obj in listed:
                self.kubectl("patch", obj, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                             check=False)
            self.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def management(settings, host, host_cluster, var_dir):  # noqa: F811
    settings.VCPORTAL_GITOPS_CLUSTER = host.name
    cluster = Management(host_cluster)
    yield cluster
    cluster.cleanup()
    for pk in VCluster.objects.exclude(phase=Phase.DELETED).values_list("pk", flat=True):
        VCluster.objects.filter(pk=pk).update(phase=Phase.DELETING)
        pipeline.teardown(pk)
