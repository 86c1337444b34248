"""A vcluster's life through `vcp` only: a live portal, a real Celery worker, the host
cluster, and the kubectl binary reading the kubeconfig vcp wrote, through the gateway."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from gateway.models import AccessRecord
from localkube.binaries import bin_dir
from tests.gateway.conftest import wait_for
from tests.provisioning.conftest import celery_worker, host, var_dir  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

ELSEWHERE = {  # a context of the user's own, which vcp must keep
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.invalid:6443"}}],
    "users": [{"name": "me", "user": {"token": "t"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me"}}],
    "current-context": "prod",
}


def test_create_wait_list_connect_and_delete_with_vcp(logged_in, host, celery_worker, host_cluster):  # noqa: F811
    celery_worker.start()
    vcp = logged_in("teammate")
    # The built kubectl, and vcp itself for kubectl's credential plugin.
    vcp.env["PATH"] = os.pathsep.join([str(bin_dir()), str(Path(sys.executable).parent), vcp.env["PATH"]])

    created = vcp("create", "vcluster", "demo", "--wait", "--cpu", "2").stdout
    lines = created.splitlines()
    assert lines[0] == "vcluster demo created in team alpha: Pending"
    assert [line.split("  ")[0] for line in lines[1:-1]] == [  # each step once it has finished, with its time
        "✓ Host namespace", "✓ Quota and limit range", "✓ Network policies", "✓ Syncer identity",
        "✓ Control plane", "✓ Kubeconfig", "✓ Syncer", "✓ Cluster DNS", "✓ Access bindings"]
    assert lines[-1].startswith("Ready in ")

    listed = json.loads(vcp("list", "vclusters", "-o", "json").stdout)
    assert [(v["name"], v["phase"], v["cpu"]) for v in listed] == [("demo", "Ready", "2")]
    assert yaml.safe_load(vcp("list", "vclusters", "-o", "yaml").stdout) == listed
    assert vcp("list", "vclusters").stdout.splitlines()[1].split()[:3] == ["demo", "alpha", "Ready"]

    kubeconfig = vcp.home / ".kube" / "config"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text(yaml.safe_dump(ELSEWHERE))
    assert "Switched to context vcp_alpha_demo" in vcp("connect", "demo").stdout
    merged = yaml.safe_load(kubeconfig.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["prod", "vcp_alpha_demo"]
    assert merged["current-context"] == "vcp_alpha_demo" and stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    (cluster,) = [c["cluster"] for c in merged["clusters"] if c["name"] == "vcp_alpha_demo"]
    assert cluster["server"].endswith(f"/kube/vclusters/{listed[0]['id']}")  # the gateway, not the API server
    namespaces = vcp.kubectl("get", "ns", "-o", "name")
    assert "namespace/kube-system" in namespaces and "namespace/default" in namespaces

    # One command in the vcluster through a temporary kubeconfig, not the user's.
    assert "namespace/tenant-ns created" in vcp("connect", "demo", "--", "kubectl", "create", "ns", "tenant-ns").stdout
    assert "tenant-ns" in vcp("connect", "demo", "--", "kubectl", "get", "ns", "-o", "name").stdout
    assert vcp("connect", "demo", "--", "kubectl", "get", "pod", "nope", code=1).stderr.startswith("Error from server")
    printed = yaml.safe_load(vcp("connect", "demo", "--print").stdout)
    assert printed["current-context"] == "vcp_alpha_demo" and yaml.safe_load(kubeconfig.read_text()) == merged
    # (kubectl create sends protobuf, whose object name the gateway does not read)
    created = wait_for(lambda: AccessRecord.objects.filter(resource="namespaces", verb="create").first(),
                       what="the create attributed")
    assert (created.username, created.code) == ("teammate", 201)

    # kubectl's exec credential plugin: `vcp token`, a token reused until it nears expiry.
    credential = json.loads(vcp("token", "demo").stdout)
    assert credential["kind"] == "ExecCredential" and credential["status"]["token"].startswith("vck_")
    assert json.loads(vcp("token", "demo").stdout) == credential
    with_exec = vcp.home / "exec.kubeconfig"
    vcp("connect", "demo", "--exec", "--kubeconfig", str(with_exec))
    (user,) = yaml.safe_load(with_exec.read_text())["users"]
    assert user["user"]["exec"]["args"] == ["token", "demo", "--team", "alpha"] and "token" not in user["user"]
    assert "tenant-ns" in vcp.kubectl("--kubeconfig", str(with_exec), "get", "ns", "-o", "name")

    deleted = vcp("delete", "vcluster", "demo", "--wait").stdout.splitlines()
    assert deleted[0] == "vcluster demo in team alpha: Deleting"
    assert [line.split("  ")[0] for line in deleted[1:-1]] == [  # teardown's steps, not provisioning's again
        "✓ Delete host namespace", "✓ Stop syncer and control plane", "✓ Host namespace gone", "✓ Remove cluster-wide objects",
        "✓ Remove credentials", "✓ Verify nothing remains"]
    assert deleted[-1].startswith("Deleted in ")
    assert vcp("list", "vclusters").stdout.splitlines() == ["NAME  TEAM  PHASE  VERSION  CPU  MEMORY  STORAGE  PODS  CREATED"]
    assert vcp("get", "vcluster", "demo", code=4).stderr == "error: No vcluster 'demo' among yours.\n"
