"""kubectl logs, exec, attach, port-forward and debug through a vcluster, on a real node.

The tenant uses only the vcluster's kubeconfig; its API server calls the syncer's
kubelet API (the virtual Node's address), which forwards to the host API server's pod
subresources. The busybox pods really run on the host's real node.
"""

from __future__ import annotations

import http.client
import re
import select
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from controlplane import pki
from controlplane.images import reference
from localkube.binaries import bin_dir
from localkube.testing import kubectl
from tests.kube.helpers import eventually, logs, run_pod, web_server

from .test_isolation import token_user

pytestmark = [pytest.mark.kube, pytest.mark.realnode]
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.fixture
def vcluster(make_real_vcluster):
    return make_real_vcluster("kub")


def test_logs_show_what_the_pod_printed_and_follow_streams_what_it_prints_later(vcluster):
    first, later = f"first-{uuid.uuid4().hex}", f"later-{uuid.uuid4().hex}"
    run_pod(vcluster.cluster, "default", "talker",
            f"echo {first}; until [ -e /tmp/go ]; do sleep 0.2; done; echo {later}; sleep 3600")
    eventually(lambda: first in logs(vcluster.cluster, "default", "talker"), what="the line in kubectl logs")

    follower = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={vcluster.kubeconfig}", "logs", "-f",
                                 "talker"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert first in read_line(follower, 30)
        kubectl(vcluster.kubeconfig, "exec", "talker", "--", "touch", "/tmp/go")
        assert later in read_line(follower, 30), "a line printed after the request started arrives on its own"
        assert follower.poll() is None, "the stream stays open"
    finally:
        follower.kill()
        follower.wait()


def read_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no line within {timeout}s"
    return process.stdout.readline()


def test_exec_runs_a_command_in_the_container_whose_token_names_its_node(vcluster):
    run_pod(vcluster.cluster, "default", "shell", "sleep 3600")
    result = kubectl(vcluster.kubeconfig, "exec", "shell", "--", "id")
    assert result.stdout.startswith("uid=0(root) gid=0(root)")

    # The mounted token is the vcluster's, issued again once the pod was bound, as a kubelet's
    # is: it names the node (the kubelet usually mounts after that, or refreshes at its next sync).
    node = vcluster.tenant.core.read_node(vcluster.tenant.core.read_namespaced_pod("shell", "default").spec.node_name)
    eventually(lambda: mounted_token_user(vcluster, "shell").extra.get("authentication.kubernetes.io/node-name")
               == [node.metadata.name], timeout=120, what="the mounted token naming the pod's node")
    assert mounted_token_user(vcluster, "shell").extra["authentication.kubernetes.io/node-uid"] == [node.metadata.uid]


def mounted_token_user(vc, pod: str) -> client.V1UserInfo:
    return token_user(vc, kubectl(vc.kubeconfig, "exec", pod, "--", "cat", TOKEN_PATH).stdout)


def test_attach_sends_stdin_to_the_running_container(vcluster):
    run_pod(vcluster.cluster, "default", "reader", 'read line; echo "got $line"; sleep 3600', stdin=True)
    kubectl(vcluster.kubeconfig, "attach", "-i", "reader", input="hello-attach\n", check=False)
    eventually(lambda: "got hello-attach" in logs(vcluster.cluster, "default", "reader"),
               what="the line read from stdin in the pod's log")


def test_port_forward_fetches_a_page_from_the_pod(vcluster):
    run_pod(vcluster.cluster, "default", "web", web_server("served-through-the-vcluster"))
    forward = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={vcluster.kubeconfig}", "port-forward",
                                "pod/web", ":8080"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = read_line(forward, 30)
        port = int(re.search(r"127\.0\.0\.1:(\d+) -> 8080", line).group(1))
        assert "served-through-the-vcluster" in eventually(lambda: get_page(port), timeout=30, what="the page")
    finally:
        forward.terminate()
        forward.wait()


def get_page(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read().decode()
    except OSError:
        return ""
    finally:
        connection.close()


# The endpoint itself, as the vcluster's API server calls it -------------------------------

def kubelet_get(vc, path: str, client_cert: tuple[Path, Path] | None = None) -> tuple[int, str]:
    """GET `path` from vc's kubelet API with `client_cert` (cert and key files), by
    default its API server's kubelet-client certificate."""
    pki_dir = vc.cluster.pki_dir
    context = ssl.create_default_context(cafile=str(vc.cluster.ca_cert_path))
    if client_cert != NO_CERT:
        cert, key = client_cert or (pki_dir / "kubelet-client.crt", pki_dir / "kubelet-client.key")
        context.load_cert_chain(str(cert), str(key))
    host, _, port = yaml.safe_load(vc.config_path.read_text())["kubelet_address"].rpartition(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


NO_CERT = ()


def test_only_the_vclusters_own_synced_pods_are_served(make_real_vcluster):
    ours, theirs = make_real_vcluster("ours"), make_real_vcluster("theirs")
    run_pod(ours.cluster, "default", "mine", "echo mine-line; sleep 3600")
    run_pod(theirs.cluster, "default", "other", "echo other-line; sleep 3600")
    eventually(lambda: "mine-line" in kubelet_get(ours, "/containerLogs/default/mine/main")[1], timeout=30,
               what="our own pod's log, straight from the endpoint")

    their_host_pod = theirs.host_name("other")
    for path in ("/containerLogs/default/other/main",  # their pod by its virtual name
                 f"/containerLogs/{theirs.host_namespace}/{their_host_pod}/main",  # and by its host name
                 f"/exec/{theirs.host_namespace}/{their_host_pod}/main?command=id&output=1",
                 "/containerLogs/kube-system/kube-apiserver/main",
                 "/portForward/default/nothing-here"):
        status, body = kubelet_get(ours, path)
        assert status == 404, (path, status, body)
        assert "other-line" not in body


def test_a_uid_that_is_not_the_pods_is_not_found(vcluster):
    run_pod(vcluster.cluster, "default", "shell", "sleep 3600")
    assert kubelet_get(vcluster, "/exec/default/shell/not-its-uid/main?command=id&output=1")[0] == 404


def test_a_client_certificate_from_another_ca_or_none_is_refused_at_the_handshake(vcluster, tmp_path):
    other_ca = pki.new_ca("another-ca")
    pair = pki.issue(other_ca, "kube-apiserver-kubelet-client", organizations=("system:masters",), client=True)
    cert, key = tmp_path / "other.crt", tmp_path / "other.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)

    for client_cert in ((cert, key), NO_CERT):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
            kubelet_get(vcluster, "/containerLogs/default/any/main", client_cert)
    eventually(lambda: vcluster.syncer.tail().count("refused a TLS handshake") == 2,
               what="both refusals in the syncer's log")


def test_kubectl_debug_adds_a_container_and_the_hosts_pod_security_still_holds(make_real_vcluster):
    """An ephemeral container reaches the host pod (its ephemeralcontainers subresource),
    runs, and its logs come back; the host namespace's Pod Security (`baseline` here)
    still refuses a privileged one, which the tenant reads in an event."""
    vc = make_real_vcluster("dbg", host_labels={"pod-security.kubernetes.io/enforce": "baseline"})
    run_pod(vc.cluster, "default", "target", "sleep 3600")
    debug = ["debug", "target", f"--image={reference('busybox')}"]
    kubectl(vc.kubeconfig, *debug, "--container=dbg", "--profile=baseline", "--", "sh", "-c",
            "echo debugging the target; sleep 3600")
    debug_log = lambda: kubectl(vc.kubeconfig, "logs", "target", "-c", "dbg", check=False).stdout  # noqa: E731
    eventually(lambda: "debugging the target" in debug_log(), timeout=120, what="the debug container's log")
    # The log is read from the host at once; the running state reaches the virtual pod with the next status sync.
    pod_status = lambda: vc.tenant.core.read_namespaced_pod("target", "default").status  # noqa: E731
    eventually(lambda: [(s.name, bool(s.state.running)) for s in pod_status().ephemeral_container_statuses or []]
               == [("dbg", True)],
               what="the debug container running in the virtual pod's status")

    kubectl(vc.kubeconfig, *debug, "--container=root", "--profile=sysadmin", "--", "sleep", "3600")
    eventually(lambda: [e for e in vc.tenant.core.list_namespaced_event("default").items
                        if e.reason == "HostRefused" and "privileged" in e.message],
               what="the host's refusal of a privileged debug container, as an event")
    host_pod = vc.operator.core.read_namespaced_pod(vc.host_name("target"), vc.host_namespace)
    assert [c.name for c in host_pod.spec.ephemeral_containers] == ["dbg"]
