"""The GitOps path as deployed: kubectl against the management cluster, and a real
Celery worker whose embedded beat runs the controller (and provisioning), on
PostgreSQL and Redis. The test only applies, reads and deletes objects."""

import base64

import pytest

from gitops import crd
from localkube.testing import kubectl
from provisioning import installation, manifests
from tests.kube.helpers import eventually
from vclusters.models import Phase, VCluster

pytestmark = pytest.mark.django_db(transaction=True)


def test_apply_to_ready_with_a_working_kubeconfig_then_delete_to_gone(management, celery_worker, settings, world,
                                                                     tmp_path):
    ns = management.namespace(team="alpha")
    celery_worker.start(VCPORTAL_GITOPS_CLUSTER=settings.VCPORTAL_GITOPS_CLUSTER, VCPORTAL_GITOPS_INTERVAL="1")
    # The worker's first pass installs the CRD; until then kubectl does not know the kind.
    eventually(lambda: management.apply("e2e", ns, cpu="1", memory="2Gi").returncode == 0, timeout=60,
               what="the CRD installed by the controller")

    def ready():
        obj = management.get("e2e", ns)
        assert (obj.get("status") or {}).get("phase") not in {"Failed", "Refused"}, obj.get("status")
        return obj if obj.get("status", {}).get("phase") == "Ready" else None

    obj = eventually(ready, timeout=180, interval=0.5, what="VirtualCluster Ready")
    assert management.conditions("e2e", ns)["Ready"]["status"] == "True"
    secret_name = obj["status"]["kubeconfigSecretRef"]["name"]
    secret = eventually(lambda: management.kube.core.read_namespaced_secret(secret_name, ns), what="Secret")
    path = tmp_path / "e2e.kubeconfig"
    path.write_bytes(base64.b64decode(secret.data["config"]))
    kubectl(path, "create", "namespace", "from-gitops")
    assert "namespace/from-gitops" in kubectl(path, "get", "namespaces", "-o", "name").stdout

    vcluster = VCluster.objects.get(team=world.alpha, name="e2e")
    host_ns = vcluster.placement.host_namespace
    assert management.kube.exists("v1", "Namespace", host_ns)
    # kubectl waits for the finalizer: the object goes only once the vcluster is torn down.
    management.kubectl("delete", f"{crd.PLURAL}.{crd.GROUP}", "e2e", "-n", ns, "--timeout=180s")

    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.DELETED
    assert management.get("e2e", ns) is None
    assert not management.kube.exists("v1", "Secret", secret_name, ns)
    assert not management.kube.exists("v1", "Namespace", host_ns)
    assert management.kube.find_labelled(manifests.selector(vcluster.pk, installation.current().name)) == []

