"""How the syncer is configured, started and permitted."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from localkube import LocalCluster
from localkube.ports import allocate
from syncer import config, kube
from syncer.health import probe
from tests.kube.helpers import eventually, new_namespace

from .conftest import REPO


def write(path, **values):
    path.write_text(yaml.safe_dump(values))
    return path


VALID = {"vcluster": "team-a", "virtual_kubeconfig": "vc.kubeconfig", "host_kubeconfig": "/etc/host.kubeconfig",
         "host_namespace": "vc-team-a"}


def test_a_config_file_is_read_with_paths_relative_to_it(tmp_path):
    loaded = config.load(write(tmp_path / "syncer.yaml", **VALID, resync_period=60, api_endpoint="10.96.0.20:443"))
    assert loaded.vcluster == "team-a"
    assert loaded.virtual_kubeconfig == tmp_path / "vc.kubeconfig"
    assert str(loaded.host_kubeconfig) == "/etc/host.kubeconfig"
    assert loaded.resync_period == 60
    assert loaded.target().api_endpoint == ("10.96.0.20", 443)
    assert loaded.path == tmp_path / "syncer.yaml"


def test_the_kubelet_endpoint_is_optional_and_its_files_are_relative_to_the_config(tmp_path):
    assert config.load(write(tmp_path / "bare.yaml", **VALID)).target().kubelet_endpoint is None
    loaded = config.load(write(tmp_path / "syncer.yaml", **VALID, kubelet_address="127.0.0.1:10250",
                               kubelet_cert="k.crt", kubelet_key="k.key", kubelet_client_ca="/pki/ca.crt"))
    assert loaded.target().kubelet_endpoint == ("127.0.0.1", 10250)
    assert (loaded.kubelet_cert, loaded.kubelet_key) == (tmp_path / "k.crt", tmp_path / "k.key")
    assert str(loaded.kubelet_client_ca) == "/pki/ca.crt"
    assert config.load(write(tmp_path / "again.yaml", **yaml.safe_load(loaded.dump()))) == loaded


def test_json_is_accepted_too(tmp_path):
    path = tmp_path / "syncer.json"
    path.write_text('{"vcluster": "a", "virtual_kubeconfig": "v", "host_kubeconfig": "h", "host_namespace": "n"}')
    assert config.load(path).host_namespace == "n"


@pytest.mark.parametrize("change, complaint", [
    ({"vcluster": "Team_A"}, "vcluster must be a DNS label"),
    ({"vcluster": "a" * 41}, "at most 40"),
    ({"host_namespace": ""}, "host_namespace must be a DNS label"),
    ({"resync_period": 0}, "must be positive"),
    ({"api_endpoint": "10.0.0.1"}, "IP:PORT"),
    ({"health_address": "8081"}, "health_address must be IP:PORT"),
    ({"kubelet_address": "127.0.0.1"}, "kubelet_address must be IP:PORT"),
    ({"kubelet_address": "127.0.0.1:10250", "kubelet_cert": "k.crt"}, "kubelet_address needs kubelet_cert, "),
    ({"colour": "blue"}, "unknown keys colour"),
])
def test_a_bad_config_is_refused_with_the_reason(tmp_path, change, complaint):
    with pytest.raises(config.ConfigError, match=complaint):
        config.load(write(tmp_path / "syncer.yaml", **{**VALID, **change}))


def test_a_missing_key_is_refused(tmp_path):
    values = dict(VALID)
    del values["host_namespace"]
    with pytest.raises(config.ConfigError, match="host_namespace"):
        config.load(write(tmp_path / "syncer.yaml", **values))


def test_a_vcluster_id_resolves_to_the_file_provisioning_stores(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="provisioning has not stored a syncer config for vcluster 7"):
        config.for_vcluster(7)
    (tmp_path / "vclusters" / "7").mkdir(parents=True)
    write(tmp_path / "vclusters" / "7" / "syncer.yaml", **VALID)
    assert config.for_vcluster(7).vcluster == "team-a"


def test_the_command_refuses_an_unknown_vcluster_clearly(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="provisioning has not stored a syncer config for vcluster 42"):
        call_command("syncer", "--vcluster", "42")


def test_the_command_refuses_a_bad_config_file(tmp_path):
    with pytest.raises(CommandError, match="unknown keys"):
        call_command("syncer", "--config", str(write(tmp_path / "s.yaml", **VALID, extra=1)))


def test_python_m_syncer_exits_2_on_a_bad_config(tmp_path):
    done = subprocess.run([sys.executable, "-m", "syncer", "--config", str(tmp_path / "missing.yaml")],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "cannot read syncer config" in done.stderr


def kubeconfig(user: dict) -> dict:
    return {"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443/",
                                                   "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": user}]}


def test_a_kubeconfig_with_a_token_file_is_loaded(tmp_path):
    (tmp_path / "token").write_text("abc\n")
    path = write(tmp_path / "kc", **kubeconfig({"tokenFile": str(tmp_path / "token")}))
    connection = kube.load_kubeconfig(path)
    assert (connection.server, connection.token) == ("https://127.0.0.1:6443", "abc")


def test_exec_credentials_are_refused_plainly(tmp_path):
    path = write(tmp_path / "kc", **kubeconfig({"exec": {"command": "aws"}}))
    with pytest.raises(kube.KubeconfigError, match="not supported"):
        kube.load_kubeconfig(path)


class TokenCheckingServer(http.server.ThreadingHTTPServer):
    """Answers 200 to the bearer token it expects, 401 to any other."""

    def __init__(self, expected: str):
        self.expected = expected

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                ok = handler.headers.get("Authorization") == f"Bearer {self.expected}"
                body = b'{"kind": "Namespace"}' if ok else b'{"kind": "Status", "reason": "Unauthorized"}'
                handler.send_response(200 if ok else 401)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def http_kubeconfig(server: TokenCheckingServer, token: str) -> dict:
    doc = kubeconfig({"token": token})
    doc["clusters"][0]["cluster"] = {"server": f"http://127.0.0.1:{server.server_address[1]}"}
    return doc


def test_rotated_credentials_are_picked_up_from_the_kubeconfig_file(tmp_path):
    server = TokenCheckingServer(expected="new")
    try:
        path = write(tmp_path / "kc", **http_kubeconfig(server, "old"))
        api = kube.Client.from_kubeconfig(path)
        with pytest.raises(kube.ApiError) as refused:
            api.get(kube.Resource("Namespace", "namespaces", namespaced=False), None, "default")
        assert refused.value.status == 401, "an unchanged file is not read again"

        write(path, **http_kubeconfig(server, "new"))
        assert api.get(kube.Resource("Namespace", "namespaces", namespaced=False), None, "default") == \
            {"kind": "Namespace"}
    finally:
        server.shutdown()


def whoami(api: kube.Client) -> str:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review)[
        "status"]["userInfo"]["username"]


def test_a_token_file_the_kubelet_rotates_is_read_again_when_the_old_token_is_refused(
        host_cluster, operator, tmp_path):
    """As in the runtime pod: a kubeconfig naming a projected token file and a CA file."""
    namespace = new_namespace(operator.core, "token-file")
    try:
        tokens = {}
        for account in ("first", "second"):
            operator.core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
            tokens[account] = operator.core.create_namespaced_service_account_token(
                account, namespace, {"spec": {"audiences": [], "expirationSeconds": 600}}).status.token
        (tmp_path / "token").write_text(tokens["first"])
        doc = kubeconfig({"tokenFile": "token"})  # relative to the kubeconfig, as kubectl reads it
        doc["clusters"][0]["cluster"] = {"server": host_cluster.server,
                                         "certificate-authority": str(host_cluster.ca_cert_path)}
        api = kube.Client.from_kubeconfig(write(tmp_path / "kc", **doc))
        assert whoami(api) == f"system:serviceaccount:{namespace}:first"

        operator.core.delete_namespaced_service_account("first", namespace)  # its tokens stop working
        eventually(lambda: refused_with(api, 401), what="the first token refused")
        (tmp_path / "token").write_text(tokens["second"])  # the kubelet's rotation
        assert whoami(api) == f"system:serviceaccount:{namespace}:second"
    finally:
        operator.core.delete_namespace(namespace)


def refused_with(api: kube.Client, status: int) -> bool:
    try:
        whoami(api)
    except kube.ApiError as exc:
        return exc.status == status
    return False


def test_a_syncer_that_cannot_list_its_clusters_is_alive_but_not_ready(tmp_path):
    unreachable = kubeconfig({"token": "t"})
    unreachable["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    write(tmp_path / "kc", **unreachable)
    port = allocate(["health"])["health"]
    path = write(tmp_path / "syncer.yaml", vcluster="vc", virtual_kubeconfig="kc", host_kubeconfig="kc",
                 host_namespace="ns", health_address=f"127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-m", "syncer", "--config", str(path)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: probe(f"127.0.0.1:{port}", "/healthz") == 200, what="the health listener")
        assert probe(f"127.0.0.1:{port}", "/readyz") == 503
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_syncer_started_before_its_vclusters_api_server_waits_for_it_then_gets_ready(
        host_cluster, operator, tmp_path_factory):
    """As in the runtime pod, where it starts beside kine and kube-apiserver: it does not
    exit, says once what it waits for, answers the kubelet's probes on a wildcard address."""
    vcluster = LocalCluster(tmp_path_factory.mktemp("late"))
    vcluster.init(name="late")
    namespace = new_namespace(operator.core, "late")
    work = tmp_path_factory.mktemp("late-syncer")
    port = allocate(["health"])["health"]
    path = write(work / "syncer.yaml", vcluster="late", virtual_kubeconfig=str(vcluster.admin_kubeconfig),
                 host_kubeconfig=str(host_cluster.admin_kubeconfig), host_namespace=namespace,
                 health_address=f"0.0.0.0:{port}")
    log = work / "syncer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "syncer", "--config", str(path)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    waiting = "waiting for the vcluster API server"
    try:
        eventually(lambda: waiting in log.read_text(), what="the syncer saying what it waits for")
        assert probe(f"127.0.0.1:{port}", "/healthz") == 200
        assert probe(f"127.0.0.1:{port}", "/readyz") == 503

        vcluster.start()
        eventually(lambda: probe(f"127.0.0.1:{port}", "/readyz") == 200 or proc.poll() is not None,
                   timeout=60, what="the syncer ready")
        assert proc.poll() is None, log.read_text()
        assert probe(f"127.0.0.1:{port}", "/readyz") == 200
        assert log.read_text().count(waiting) == 1
    finally:
        proc.terminate()
        proc.wait(10)
        vcluster.stop()
        operator.core.delete_namespace(namespace)


def test_a_policy_in_the_config_is_read_and_a_bad_one_refused(tmp_path):
    loaded = config.load(write(tmp_path / "s.yaml", **VALID, policy={"csi_drivers": ["b", "a"]}))
    assert loaded.policy.csi_drivers == ("a", "b")
    assert loaded.target().policy == loaded.policy
    assert config.load(write(tmp_path / "again.yaml", **yaml.safe_load(loaded.dump()))).policy == loaded.policy
    with pytest.raises(config.ConfigError, match="policy: unknown policy keys: hostPath"):
        config.load(write(tmp_path / "bad.yaml", **VALID, policy={"hostPath": True}))
