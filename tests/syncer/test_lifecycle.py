"""Deletion, restarts and teardown: nothing duplicated, nothing left behind."""

from __future__ import annotations

import subprocess
import sys

from kubernetes import client

from syncer import names
from tests.kube.helpers import eventually

from .conftest import REPO, Clients
from .test_configs import configmap, pod_using, secret
from .test_pods import deployment
from .test_services import service


def consistent(vcluster, namespace: str = "default", expected: int | None = None) -> bool:
    """Exactly one Running host pod per virtual pod, each Running with the host pod's IP,
    and one token Secret per host pod."""
    virtual = vcluster.tenant.core.list_namespaced_pod(namespace).items
    host = vcluster.host_pods(namespace)
    if expected is not None and len(virtual) != expected:
        return False
    by_name = {}
    for pod in host:
        by_name.setdefault(pod.metadata.annotations[names.ANN_NAME], []).append(pod)
    if sorted(by_name) != sorted(p.metadata.name for p in virtual) or any(len(v) > 1 for v in by_name.values()):
        return False
    if any(p.status.phase != "Running" or p.status.pod_ip != by_name[p.metadata.name][0].status.pod_ip
           for p in virtual):
        return False
    tokens = [s for s in vcluster.host_objects()["secrets"]
              if s.metadata.annotations[names.ANN_KIND] == names.TOKEN_KIND
              and s.metadata.labels[names.LABEL_NAMESPACE] == namespace]
    return sorted(s.metadata.name for s in tokens) == sorted(names.token_secret_name(p.metadata.name) for p in host)


def test_a_syncer_killed_with_sigkill_and_restarted_is_consistent_without_duplicates_or_orphans(vcluster):
    tenant = vcluster.tenant
    tenant.apps.create_namespaced_deployment("default", deployment("web", 3))
    tenant.core.create_namespaced_config_map("default", configmap("lonely-config", mode="x"))
    tenant.core.create_namespaced_pod("default", pod_using("lonely", configmap="lonely-config"))
    eventually(lambda: consistent(vcluster, expected=4), what="4 pods in step")

    vcluster.syncer.kill()
    tenant.apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    tenant.core.delete_namespaced_pod("lonely", "default", grace_period_seconds=0)
    tenant.core.delete_namespaced_config_map("lonely-config", "default")
    eventually(lambda: len(tenant.core.list_namespaced_pod("default").items) == 5, what="5 virtual pods")
    vcluster.syncer.start()

    eventually(lambda: consistent(vcluster, expected=5), what="5 pods in step after the restart")
    assert not [c for c in vcluster.host_objects()["configmaps"]
                if c.metadata.annotations[names.ANN_NAME] == "lonely-config"]

    # Killed again in the middle of a burst.
    for i in range(15):
        tenant.core.create_namespaced_pod("default", pod_using(f"burst-{i}"))
    vcluster.syncer.kill()
    vcluster.syncer.start()
    eventually(lambda: consistent(vcluster, expected=20), what="20 pods in step after a kill mid-burst")


def test_the_syncer_carries_on_after_the_vclusters_api_server_restarts(vcluster):
    tenant = vcluster.tenant
    tenant.core.create_namespaced_pod("default", pod_using("before"))
    eventually(lambda: consistent(vcluster, expected=1), what="the first pod in step")

    vcluster.cluster.stop()
    vcluster.cluster.start()  # may move the API server to another port, rewriting its kubeconfig
    tenant = vcluster.tenant = Clients(vcluster.cluster.api_client())

    tenant.core.create_namespaced_pod("default", pod_using("after"))
    eventually(lambda: consistent(vcluster, expected=2), what="the pod created after the restart in step")
    assert vcluster.syncer.proc.poll() is None, "the syncer rode out the outage"


def test_deleting_a_virtual_namespace_removes_its_host_objects(vcluster):
    tenant = vcluster.tenant
    tenant.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    eventually(lambda: tenant.core.read_namespaced_service_account("default", "shop"), what="shop's account")
    tenant.apps.create_namespaced_deployment("shop", deployment("web", 2))
    tenant.core.create_namespaced_service("shop", service("web", {"app": "web"}))
    tenant.core.create_namespaced_config_map("shop", configmap("settings", mode="x"))
    tenant.core.create_namespaced_secret("shop", secret("creds", password="p"))
    tenant.core.create_namespaced_pod("shop", pod_using("app", configmap="settings", secret="creds"))
    tenant.core.create_namespaced_pod("default", pod_using("keeper"))
    eventually(lambda: consistent(vcluster, "shop", expected=3) and consistent(vcluster, "default", expected=1),
               what="both namespaces in step")

    tenant.core.delete_namespace("shop")

    def shop_on_host():
        return [o for objs in vcluster.host_objects(only_syncers=False).values() for o in objs
                if o.metadata.labels.get(names.LABEL_NAMESPACE) == "shop"]

    eventually(lambda: not shop_on_host(), timeout=90, what="no host object of namespace shop")
    assert consistent(vcluster, "default", expected=1)


def test_tearing_down_a_vcluster_leaves_none_of_its_host_objects(vcluster):
    tenant = vcluster.tenant
    tenant.apps.create_namespaced_deployment("default", deployment("web", 2))
    tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))
    tenant.core.create_namespaced_config_map("default", configmap("settings", mode="x"))
    tenant.core.create_namespaced_pod("default", pod_using("app", configmap="settings"))
    eventually(lambda: consistent(vcluster, expected=3) and vcluster.host_objects()["services"],
               what="everything synced")

    vcluster.syncer.stop()
    done = subprocess.run([sys.executable, "manage.py", "syncer", "--config", str(vcluster.config_path), "--teardown"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "deleted" in done.stdout

    eventually(lambda: not any(vcluster.host_objects(only_syncers=False).values()),
               what="no host object of the vcluster left")
