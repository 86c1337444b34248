"""A host cluster registered `--in-cluster` (what the Helm chart registers at start): the
portal reaches the cluster it runs in with its pod's ServiceAccount token, stores no
kubeconfig, and reads the token again as the kubelet rotates it. Against a real API
server, with a real ServiceAccount token in the files a pod would have."""

from __future__ import annotations

import base64

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client
from kubernetes.config import incluster_config

from accounts.models import AuditEvent
from provisioning.hostkube import HostKube
from provisioning.models import HostCluster
from tests.kube.helpers import new_namespace

pytestmark = [pytest.mark.kube, pytest.mark.django_db]


@pytest.fixture
def in_a_pod(host_cluster, tmp_path, monkeypatch):
    """The files and variables of a pod whose ServiceAccount is `portal`."""
    core = client.CoreV1Api(host_cluster.api_client())
    namespace = new_namespace(core, "portal")
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="portal")))
    # What registration needs of the chart's cluster role: its record on the host (docs/installation.md).
    rbac = client.RbacAuthorizationV1Api(host_cluster.api_client())
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=namespace), rules=[
        client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "create"])]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=namespace),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=namespace),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="portal", namespace=namespace)]))
    token = core.create_namespaced_service_account_token(
        "portal", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))).status.token
    kubeconfig = yaml.safe_load(host_cluster.admin_kubeconfig.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    return f"system:serviceaccount:{namespace}:portal"


def test_it_registers_the_cluster_it_runs_in_with_its_own_service_account(in_a_pod, capsys):
    call_command("register_hostcluster", "in-cluster", "--in-cluster", "--runtime", "kubernetes", "--access", "clusterip")

    host = HostCluster.objects.get(name="in-cluster")
    assert (host.in_cluster, host.kubeconfig, host.access) == (True, "", "clusterip")
    assert capsys.readouterr().out == "registered host cluster in-cluster\n"
    review = client.AuthenticationV1Api(HostKube.of(host).api).create_self_subject_review(
        client.V1SelfSubjectReview())
    assert review.status.user_info.username == in_a_pod
    event = AuditEvent.objects.get(action="host_cluster.create")
    assert event.data["in_cluster"] is True and "kubeconfig" not in event.data

    call_command("register_hostcluster", "in-cluster", "--in-cluster")  # at every start: an update, not an error
    assert AuditEvent.objects.filter(action="host_cluster.update").count() == 1


def test_without_rights_to_record_itself_on_the_cluster_it_registers_nothing(in_a_pod, host_cluster):
    rbac = client.RbacAuthorizationV1Api(host_cluster.api_client())
    rbac.delete_cluster_role_binding(in_a_pod.rsplit(":", 2)[1])
    with pytest.raises(CommandError, match=r"in_cluster: cannot record on the cluster that this portal manages it "
                                           r"\(namespace vcportal-installation-.*\): host API answered 403: "):
        call_command("register_hostcluster", "in-cluster", "--in-cluster", "--runtime", "local")
    assert not HostCluster.objects.exists()


def test_outside_a_pod_it_says_so_and_registers_nothing(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(CommandError, match=r"in_cluster: The portal does not run in a Kubernetes pod with a "
                                           r"ServiceAccount token \(Service host/port is not set.\)"):
        call_command("register_hostcluster", "in-cluster", "--in-cluster")
    assert not HostCluster.objects.exists()


def test_a_kubeconfig_and_in_cluster_exclude_each_other(tmp_path):
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("register_hostcluster", "x", "--in-cluster", "--kubeconfig", str(tmp_path / "k"))
