"""A pod with a subdomain finds its virtual name in /etc/hosts, on a real node.

The kubelet writes `<hostname>.<subdomain>.<namespace>.svc.<domain>` there with the host
pod's names; the syncer's first init container writes the virtual one instead
(syncer.kinds.pods.translate._virtual_etc_hosts). Under the host's restricted Pod
Security, as it runs as nobody without privileges.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from localkube.testing import kubectl
from tests.kube.helpers import busybox_pod, eventually

pytestmark = [pytest.mark.kube, pytest.mark.realnode]

RESTRICTED = client.V1SecurityContext(
    run_as_non_root=True, run_as_user=1000, allow_privilege_escalation=False,
    capabilities=client.V1Capabilities(drop=["ALL"]), seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"))


def test_hostname_f_answers_the_virtual_name_under_restricted_pod_security(make_real_vcluster):
    vc = make_real_vcluster("hosts", host_labels={"pod-security.kubernetes.io/enforce": "restricted"})
    core = vc.tenant.core
    core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1ServiceSpec(cluster_ip="None", selector={"app": "db-0"}, ports=[client.V1ServicePort(port=80)])))
    pod = busybox_pod("db-0", "sleep 3600")
    pod.spec.hostname, pod.spec.subdomain = "db-0", "db"
    pod.spec.containers[0].security_context = RESTRICTED
    core.create_namespaced_pod("default", pod)
    eventually(lambda: core.read_namespaced_pod("db-0", "default").status.phase == "Running", timeout=120,
               what="the pod Running under the host's restricted Pod Security")

    exec_ = lambda *command: kubectl(vc.kubeconfig, "exec", "db-0", "--", *command).stdout  # noqa: E731
    assert exec_("hostname", "-f").strip() == "db-0.db.default.svc.cluster.local"
    hosts = exec_("cat", "/etc/hosts")
    assert "\tdb-0.db.default.svc.cluster.local\tdb-0" in hosts and vc.host_namespace not in hosts
    assert "localhost" in hosts, "the rest of the kubelet's file stays"

    status = core.read_namespaced_pod("db-0", "default").status
    assert not status.init_container_statuses, "the writer is the host's business"
