"""The local cluster launcher against the real upstream binaries.

Pods "run" on kwok's fake nodes: kwok marks them Running with an IP, but no container
starts. These tests prove the control plane's behaviour, not a container runtime's.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from localkube import ClusterError, LocalCluster
from localkube.binaries import kube_version
from localkube.components import command_line
from localkube.processes import process_alive
from localkube.testing import kubectl

from .helpers import deployment, eventually, new_namespace, pod


@pytest.fixture(scope="module")
def core(host_cluster):
    return client.CoreV1Api(host_cluster.api_client())


def test_deleted_namespace_is_finalized_and_disappears(core):
    name = new_namespace(core)
    core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    core.delete_namespace(name)

    def gone():
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, what=f"namespace {name} to be finalized")


def test_resource_quota_rejects_an_over_quota_pod(core):
    ns = new_namespace(core)
    core.create_namespaced_resource_quota(
        ns,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="q"), spec=client.V1ResourceQuotaSpec(hard={"pods": "1"})
        ),
    )
    eventually(lambda: core.read_namespaced_resource_quota("q", ns).status.hard, what="quota status")
    core.create_namespaced_pod(ns, pod("first"))

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(ns, pod("second"))
    assert exc.value.status == 403
    assert "exceeded quota" in exc.value.body


def test_baseline_pod_security_rejects_a_privileged_pod(core):
    ns = new_namespace(core, labels={"pod-security.kubernetes.io/enforce": "baseline"})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(ns, pod("priv", privileged=True))
    assert exc.value.status == 403
    assert "violates PodSecurity" in exc.value.body
    core.create_namespaced_pod(ns, pod("plain"))  # the same pod unprivileged is admitted


def test_deployment_pods_are_scheduled_on_kwok_nodes_and_run(host_cluster, core):
    ns = new_namespace(core)
    web = client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")])
    client.AppsV1Api(host_cluster.api_client()).create_namespaced_deployment(ns, deployment("web", web, replicas=3))

    def running():
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        done = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
        return pods if len(pods) == 3 and len(done) == 3 else None

    pods = eventually(running, what="3 running pods")
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)


def test_custom_resources_are_stored_and_listed(host_cluster):
    api = host_cluster.api_client()
    ext = client.ApiextensionsV1Api(api)
    group, plural = "demo.vcportal.test", "widgets"
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        }
    )

    def established():
        crd = ext.read_custom_resource_definition(f"{plural}.{group}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    eventually(established, what="CRD Established")
    custom = client.CustomObjectsApi(api)
    eventually(
        lambda: custom.create_namespaced_custom_object(
            group, "v1", "default", plural,
            {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "size": 3},
        ),
        what="custom object accepted",
    )
    items = custom.list_namespaced_custom_object(group, "v1", "default", plural)["items"]
    assert [(i["metadata"]["name"], i["size"]) for i in items] == [("w1", 3)]


def test_two_clusters_side_by_side_keep_separate_data(make_cluster):
    one, two = make_cluster("one"), make_cluster("two")
    assert set(one.config.ports.values()).isdisjoint(two.config.ports.values())
    core_one = client.CoreV1Api(one.api_client())
    core_two = client.CoreV1Api(two.api_client())
    core_one.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="only-in-one")))

    names_two = {n.metadata.name for n in core_two.list_namespace().items}
    assert "only-in-one" not in names_two
    assert "only-in-one" in {n.metadata.name for n in core_one.list_namespace().items}
    # Each cluster trusts only its own CA: one's admin cannot talk to two.
    response = requests.get(
        f"{two.server}/readyz",
        cert=(str(one.pki_dir / "admin.crt"), str(one.pki_dir / "admin.key")),
        verify=str(two.ca_cert_path),
        timeout=5,
    )
    assert response.status_code == 401


def test_restart_from_state_directory_keeps_objects_and_leaves_no_process(make_cluster):
    cluster = make_cluster("restart")
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="keep"), data={"k": "v"})
    )
    pids = cluster.pids()
    assert set(pids) == {"kine", "kube-apiserver", "kube-controller-manager"}

    cluster.stop()
    assert not [pid for pid in pids.values() if process_alive(pid)]
    assert not cluster.is_ready()

    again = LocalCluster(cluster.state_dir)
    again.start()
    core = client.CoreV1Api(again.api_client())
    assert core.read_namespaced_config_map("keep", "default").data == {"k": "v"}


def test_the_api_server_exits_on_sigterm_while_its_clients_watch(make_cluster, caplog):
    """A client's watch is open, as a syncer's or a worker's is when a vcluster's or the
    host's API server restarts: it drains it and exits, so a restart is not held up
    until the watch times out (it was SIGKILLed after the launcher's grace, with the warning)."""
    cluster = make_cluster("watched")
    watcher = subprocess.Popen([str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.admin_kubeconfig}",
                                "get", "configmaps", "--all-namespaces", "--watch"], stdout=subprocess.PIPE)
    try:
        assert watcher.stdout.readline()  # the watch is open
        cluster.processes.stop("kube-apiserver", timeout=10)
    finally:
        watcher.kill()
        watcher.wait()
    assert "ignored SIGTERM" not in caplog.text
    cluster.start()
    assert cluster.is_ready()


def test_unauthenticated_is_401_and_a_token_without_rbac_is_403(host_cluster, core):
    url = f"{host_cluster.server}/api/v1/namespaces"
    verify = str(host_cluster.ca_cert_path)
    assert requests.get(url, verify=verify, timeout=5).status_code == 401

    ns = new_namespace(core)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody")))
    token = core.create_namespaced_service_account_token(
        "nobody", ns, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=5)
    assert response.status_code == 403
    assert "cannot list resource" in response.json()["message"]


def test_service_account_issuer_discovery_names_keys_under_the_issuer_a_pod_reaches(host_cluster):
    """Its jwks_uri is the issuer's own name (the `kubernetes` Service), not the advertised
    loopback or pod address, which no pod reaches or whose certificate names it not."""
    from controlplane.components import SERVICE_ACCOUNT_ISSUER

    def get(path):
        return json.loads(kubectl(host_cluster.admin_kubeconfig, "get", "--raw", path).stdout)

    discovery = get("/.well-known/openid-configuration")
    assert discovery["issuer"] == SERVICE_ACCOUNT_ISSUER
    assert discovery["jwks_uri"] == f"{SERVICE_ACCOUNT_ISSUER}/openid/v1/jwks"
    assert get("/openid/v1/jwks")["keys"]


def test_kubectl_and_version_endpoint_report_the_built_release(host_cluster):
    result = kubectl(host_cluster.admin_kubeconfig, "version", "-o", "json")
    versions = json.loads(result.stdout)
    assert versions["serverVersion"]["gitVersion"] == kube_version()
    assert versions["clientVersion"]["gitVersion"] == kube_version()
    assert kubectl(host_cluster.admin_kubeconfig, "get", "--raw", "/readyz").stdout == "ok"


def test_a_component_running_with_another_command_line_is_restarted(make_cluster):
    """What runs must be what this code starts: a component started by an older
    version (e.g. kine on TCP before its socket) is replaced by the next start()."""
    cluster = make_cluster("upgraded")
    component = "kube-controller-manager"
    cluster.processes.stop(component)
    older = [str(cluster.bin_dir / component), *command_line(component, cluster, cluster.config), "--v=1"]
    cluster.processes.spawn(component, older)
    before = cluster.pids()

    cluster.start()
    after = cluster.pids()
    assert after[component] != before[component] and not process_alive(before[component])
    assert "--v=1" not in cluster.processes.argv(component)
    assert {c: p for c, p in after.items() if c != component} == {
        c: p for c, p in before.items() if c != component
    }


@pytest.mark.kube
def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path):
    cluster = LocalCluster(tmp_path / "broken")
    cluster.init(name="broken")
    (cluster.pki_dir / "kube-apiserver.crt").write_text("not a certificate")

    with pytest.raises(ClusterError) as exc:
        cluster.start(timeout=60)
    message = str(exc.value)
    assert message.startswith("kube-apiserver exited during start-up")
    assert "last lines of its log" in message and "failed to find any PEM data" in message
    cluster.stop()
    assert cluster.pids() == {}


def test_state_directory_and_secrets_are_private(host_cluster):
    assert (host_cluster.state_dir.stat().st_mode & 0o777) == 0o700
    for path in (host_cluster.pki_dir / "ca.key", host_cluster.pki_dir / "sa.key", host_cluster.admin_kubeconfig):
        assert (path.stat().st_mode & 0o777) == 0o600, path


def test_a_control_plane_can_keep_its_data_in_postgresql(make_cluster):
    """kine's PostgreSQL backend, on the server `make test` starts (DATABASE_URL)."""
    url = os.environ.get("DATABASE_URL", "")
    assert url.startswith("postgres"), "this test needs DATABASE_URL to name the PostgreSQL server"
    parts = urlsplit(url)
    database = f"kine_{uuid.uuid4().hex[:8]}"  # kine creates it: the role may create databases
    cluster = make_cluster("on-pg", datastore=urlunsplit(parts._replace(path=f"/{database}", query="sslmode=disable")))
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="in-pg")))
    assert not (cluster.state_dir / "kine" / "state.db").exists()

    with psycopg.connect(urlunsplit(parts._replace(path=f"/{database}"))) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM kine WHERE name = '/registry/configmaps/default/in-pg'"
        ).fetchone()
    assert stored >= 1
    cluster.stop()
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{database}"')
