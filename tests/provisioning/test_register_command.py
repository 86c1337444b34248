"""`manage.py register_hostcluster` (what `make run` uses) goes through the audited
service as the system actor: same kubeconfig and runtime checks as the API, an audit
row each time; runtime options left out keep an existing host's values."""

import os
import subprocess
import sys

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from provisioning.models import HostCluster
from tests.portal.conftest import UNREACHABLE_KUBECONFIG
from tests.provisioning.conftest import ROOT, portal_database_url


def _manage(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": portal_database_url()}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_kubeconfig_that_runs_a_command_and_writes_nothing(tmp_path):
    marker = tmp_path / "ran"
    doc = yaml.safe_load(UNREACHABLE_KUBECONFIG)
    doc["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch",
                                        "args": [str(marker)]}}
    path = tmp_path / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(doc))

    result = _manage("register_hostcluster", "east", "--kubeconfig", str(path), "--runtime", "local")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: kubeconfig: kubeconfig refers to files or commands on the portal's machine (exec); "
        "embed the credentials instead, e.g. with `kubectl config view --raw --flatten --minify`."
    )
    assert not marker.exists()
    assert (HostCluster.objects.count(), AuditEvent.objects.count()) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_bad_runtime_options_all_at_once_and_writes_nothing(tmp_path):
    path = tmp_path / "admin.kubeconfig"
    path.write_text(UNREACHABLE_KUBECONFIG)

    result = _manage("register_hostcluster", "east", "--kubeconfig", str(path), "--runtime", "docker",
                     "--access", "hostport", "--runtime-image", "not an image")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]  # after the client's connection warnings
    assert error.startswith("CommandError: ") and "Traceback" not in result.stderr
    for expected in ("runtime: Choose one of: kubernetes, local.", "access: Choose one of: nodeport, loadbalancer, "
                     "ingress, clusterip.", "runtime_image: Give an image reference", "kubeconfig: cannot reach the host cluster"):
        assert expected in error, error
    assert (HostCluster.objects.count(), AuditEvent.objects.count()) == (0, 0)


RUNTIME = {"runtime", "runtime_image", "access", "access_address"}


def runtime_of(name: str) -> dict:
    return HostCluster.objects.filter(name=name).values(*RUNTIME).get()


@pytest.mark.django_db
def test_it_registers_and_updates_through_the_audited_service(host_cluster, tmp_path, capsys):
    path = tmp_path / "admin.kubeconfig"
    path.write_text(host_cluster.admin_kubeconfig.read_text())

    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--access-address", "10.99.0.2")
    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--disabled")
    call_command("register_hostcluster", "local", "--kubeconfig", str(path))  # keeps it disabled

    assert capsys.readouterr().out.splitlines() == [
        "registered host cluster local", "updated host cluster local", "updated host cluster local"]
    assert not HostCluster.objects.get(name="local").enabled
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor", "actor_username", "data"))
    assert [e[:3] for e in events] == [("host_cluster.create", None, "")] + [("host_cluster.update", None, "")] * 2
    assert events[1][3]["kubeconfig_replaced"] and events[1][3]["after"]["enabled"] is False
    assert "kubeconfig" not in events[0][3]
    defaults = {"runtime": "kubernetes", "runtime_image": "", "access": "nodeport", "access_address": "10.99.0.2"}
    assert {field: events[0][3][field] for field in RUNTIME} == defaults
    assert runtime_of("local") == defaults  # updates without runtime options keep them


@pytest.mark.django_db
def test_runtime_options_are_set_on_update_and_checked(host_cluster, tmp_path):
    path = tmp_path / "admin.kubeconfig"
    path.write_text(host_cluster.admin_kubeconfig.read_text())
    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--runtime", "local")
    assert runtime_of("local") == {"runtime": "local", "runtime_image": "", "access": "nodeport", "access_address": ""}

    with pytest.raises(CommandError, match=r"^access_address: Give the DNS domain"):
        call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--runtime", "kubernetes",
                     "--access", "ingress", "--access-address", "10.99.0.2")
    assert runtime_of("local")["runtime"] == "local"

    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--runtime", "kubernetes",
                 "--access", "ingress", "--access-address", "vc.example.com",
                 "--runtime-image", "127.0.0.1:5390/vcportal/runtime:v1")
    assert runtime_of("local") == {"runtime": "kubernetes", "runtime_image": "127.0.0.1:5390/vcportal/runtime:v1",
                                   "access": "ingress", "access_address": "vc.example.com"}
    event = AuditEvent.objects.filter(action="host_cluster.update").latest("id")
    assert (event.data["before"]["runtime"], event.data["after"]["access"]) == ("local", "ingress")


@pytest.mark.django_db
def test_a_tenant_policy_is_a_new_hosts_and_an_existing_host_keeps_its_own(host_cluster, tmp_path):
    path = tmp_path / "admin.kubeconfig"
    path.write_text(host_cluster.admin_kubeconfig.read_text())
    embedded = '{"ingress_hosts": ["*.{team}.apps.vcportal.localhost"]}'
    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--runtime", "local", "--tenant-policy", embedded)
    assert HostCluster.objects.get(name="local").policy().ingress_hosts == ("*.{team}.apps.vcportal.localhost",)

    HostCluster.objects.filter(name="local").update(tenant_policy={"ingress_hosts": ["*.{team}.example.com"]})
    call_command("register_hostcluster", "local", "--kubeconfig", str(path), "--runtime", "local", "--tenant-policy", embedded)
    assert HostCluster.objects.get(name="local").policy().ingress_hosts == ("*.{team}.example.com",), "an admin's"

    with pytest.raises(CommandError, match="tenant_policy: ingress_hosts are lower-case DNS names"):
        call_command("register_hostcluster", "east", "--kubeconfig", str(path), "--runtime", "local", "--tenant-policy",
                     '{"ingress_hosts": ["*"]}')
    assert not HostCluster.objects.filter(name="east").exists()
    result = _manage("register_hostcluster", "east", "--kubeconfig", str(path), "--runtime", "local", "--tenant-policy", "[1]")
    assert result.returncode == 2 and "--tenant-policy: a JSON object" in result.stderr
