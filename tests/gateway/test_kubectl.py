"""kubectl through the gateway, against a real vcluster control plane (make_cluster):
a personal kubeconfig works for get, apply, watch and delete as the person, and every
way of losing access takes effect on the next request; logs and exec reach a pod that
runs on the real node (a vcluster synced to real_host_cluster)."""

import json
import logging
import os
import queue
import ssl
import subprocess
import threading
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.services import change_role, remove_member
from gateway.models import AccessRecord, AccessToken, Activity
from gateway.services import issue_kubeconfig, revoke_token
from localkube.binaries import bin_dir
from localkube.testing import kubectl
from provisioning.rbac import ensure_access_bindings
from tests.kube.helpers import run_pod
from tests.portal.conftest import make_vcluster
from tests.syncer.conftest import make_real_vcluster  # noqa: F401  (fixture)
from vclusters.models import Phase, VCluster

from .conftest import actor, wait_for

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {name: %s, namespace: default}
data: {owner: "%s"}
"""


GHOST_POD = """apiVersion: v1
kind: Pod
metadata: {name: ghost, namespace: default}
spec: {nodeName: nowhere, containers: [{name: app, image: registry.example/app:1}]}
"""


def kubeconfig_for(user, vcluster, server, tmp_path) -> str:
    path = tmp_path / f"{user.username}-{vcluster.pk}.kubeconfig"
    path.write_text(issue_kubeconfig(actor(user), vcluster, server.url))
    return str(path)


def token_in(kubeconfig_path: str) -> str:
    import yaml

    with open(kubeconfig_path) as fh:
        return yaml.safe_load(fh)["users"][0]["user"]["token"]


def run(kubeconfig: str, *args: str, input: str | None = None) -> str:
    """kubectl's output; a failure shows kubectl's error."""
    result = kubectl(kubeconfig, *args, input=input, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def can_create(kubeconfig: str, name: str) -> subprocess.CompletedProcess:
    return kubectl(kubeconfig, "apply", "-f", "-", input=CONFIGMAP % (name, name), check=False)


def test_kubectl_works_through_the_gateway_as_the_person(world, vcluster, vcluster_control_plane, gateway_server,
                                                         tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    kc = kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path)

    whoami = json.loads(run(kc, "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert whoami["username"] == "vcportal:teammate"
    assert {"vcportal:team:alpha", "vcportal:role:member"} <= set(whoami["groups"])

    assert "kube-system" in run(kc, "get", "namespaces", "-o", "name")
    assert can_create(kc, "settings").returncode == 0
    assert json.loads(run(kc, "get", "configmap", "settings", "-o", "json"))["data"] == {
        "owner": "settings"}
    portal_client = json.loads(run(str(vcluster_control_plane.admin_kubeconfig), "auth", "whoami", "-o", "json"))
    created = wait_for(lambda: audited(vcluster_control_plane, "create", "settings"), what="the audit event")
    assert created["impersonatedUser"]["username"] == "vcportal:teammate"  # the vcluster's own log names the person
    assert created["user"]["username"] == portal_client["status"]["userInfo"]["username"]

    with WatchedKubectl(kc, "get", "configmaps", "--watch", "-o", "name") as watch:
        listed = {watch.next_line(), watch.next_line()}  # the list; the watch is open now
        assert listed == {"configmap/kube-root-ca.crt", "configmap/settings"}
        assert can_create(kc, "while-watching").returncode == 0
        assert watch.next_line() == "configmap/while-watching"  # relayed while the watch is open

    assert kubectl(kc, "delete", "configmap", "settings").returncode == 0

    records = wait_for(lambda: list(AccessRecord.objects.filter(vcluster=vcluster).order_by("at")) or None,
                       what="access records")
    wait_for(lambda: AccessRecord.objects.filter(vcluster=vcluster, verb="delete").exists(), what="the delete")
    records = AccessRecord.objects.filter(vcluster=vcluster).order_by("at", "id")
    by_name = {(r.verb, r.name): r for r in records}
    created = by_name[("create", "settings")]
    assert (created.username, created.resource, created.namespace, created.code) == (
        "teammate", "configmaps", "default", 201)
    assert by_name[("delete", "settings")].code == 200
    assert all(r.username == "teammate" for r in records)
    assert not records.filter(verb__in=["get", "list", "watch"]).exists()  # reads are counted only
    assert wait_for(lambda: vcluster.request_counts.filter(reads__gt=3).exists(), what="read counts")
    assert Activity.objects.get(vcluster=vcluster).last_username == "teammate"

    token = token_in(kc)
    assert token not in caplog.text
    assert not AccessToken.objects.filter(digest=token).exists() and not AccessToken.objects.filter(prefix=token).exists()


def audited(cluster, verb: str, name: str) -> dict | None:
    """The API server's audit event for `verb` on the object `name`, checking that no
    event carries a request or response body (Metadata level: Secrets stay out)."""
    log = cluster.state_dir / "logs" / "audit.log"
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not any("requestObject" in e or "responseObject" in e for e in events)
    return next((e for e in events if e["verb"] == verb and e.get("objectRef", {}).get("name") == name), None)


def test_the_authorization_matrix_and_losing_access(world, vcluster, gateway_server, tmp_path):
    member = kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path)
    viewer = kubeconfig_for(world.viewer, vcluster, gateway_server, tmp_path)
    staff = kubeconfig_for(world.staff, vcluster, gateway_server, tmp_path)

    assert can_create(member, "by-member").returncode == 0
    run(viewer, "get", "configmap", "by-member")
    refused = can_create(viewer, "by-viewer")
    assert refused.returncode != 0 and "forbidden" in refused.stderr
    assert can_create(staff, "by-platform-admin").returncode == 0

    # The viewer cannot claim more through headers of their own.
    sneaky = http(gateway_server, vcluster, token_in(viewer), "POST", "/api/v1/namespaces/default/configmaps",
                  json={"metadata": {"name": "sneaky"}},
                  headers={"Impersonate-User": "admin", "Impersonate-Group": "system:masters"})
    assert sneaky.status_code == 403
    impersonating = kubectl(member, "--as", "admin", "get", "configmaps", check=False)
    assert impersonating.returncode != 0 and "Impersonation (kubectl --as" in impersonating.stderr

    # Role changes apply to the next request, both ways.
    membership = Membership.objects.get(team=world.alpha, user=world.viewer)
    change_role(actor(world.owner), membership, role=Role.MEMBER)
    assert can_create(viewer, "promoted").returncode == 0
    change_role(actor(world.owner), membership, role=Role.VIEWER)
    assert can_create(viewer, "demoted").returncode != 0

    # An outsider: no token, or a token for their own team's vcluster.
    assert_status(http(gateway_server, vcluster, None, "GET", "/api/v1/namespaces"), 401, "No bearer token")
    theirs = make_vcluster(world.beta, "theirs", phase=Phase.READY, kubeconfig=vcluster.kubeconfig)
    outsider = kubeconfig_for(world.outsider, theirs, gateway_server, tmp_path)
    assert_status(http(gateway_server, vcluster, token_in(outsider), "GET", "/api/v1/namespaces"), 401,
                  "another vcluster")

    # Revoked, expired, removed, deleted: refused at once, with a Status kubectl shows.
    revoke_token(actor(world.staff), AccessToken.objects.get(user=world.staff))
    gone = kubectl(staff, "get", "namespaces", check=False)
    assert gone.returncode != 0 and "This token was revoked" in gone.stderr

    AccessToken.objects.filter(user=world.viewer).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_status(http(gateway_server, vcluster, token_in(viewer), "GET", "/api/v1/namespaces"), 401, "expired")

    remove_member(actor(world.owner), Membership.objects.get(team=world.alpha, user=world.teammate))
    removed = kubectl(member, "get", "namespaces", check=False)
    assert removed.returncode != 0 and "not a member of team alpha" in removed.stderr
    Membership.objects.create(team=world.alpha, user=world.teammate, role=Role.MEMBER)
    assert kubectl(member, "get", "namespaces").returncode == 0

    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.DELETED)
    deleted = kubectl(member, "get", "namespaces", check=False)
    assert deleted.returncode != 0 and "vcluster web has been deleted" in deleted.stderr


def test_websocket_streams_are_relayed_and_spdy_is_refused_with_a_reason(world, vcluster, gateway_server, tmp_path):
    import asyncio

    import aiohttp

    token = token_in(kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path))
    kc = kubeconfig_for(world.owner, vcluster, gateway_server, tmp_path)
    path = f"/kube/vclusters/{vcluster.pk}/api/v1/namespaces/default/configmaps?watch=true"
    tls = ssl.create_default_context(cafile=gateway_server.ca)

    async def watch_over_websocket():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(gateway_server.url.replace("http", "ws") + path, origin=gateway_server.url,
                                          headers={"Authorization": f"Bearer {token}"}, ssl=tls) as ws:
                assert can_create(kc, "over-websocket").returncode == 0
                while True:
                    message = await asyncio.wait_for(ws.receive(), timeout=20)
                    assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                    event = json.loads(message.data)
                    if event["object"]["metadata"]["name"] == "over-websocket":
                        return event["type"]

    assert asyncio.run(watch_over_websocket()) == "ADDED"

    async def refused_websocket(bearer):
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await session.ws_connect(gateway_server.url.replace("http", "ws") + path,
                                         headers={"Authorization": f"Bearer {bearer}"}, ssl=tls)
            return caught.value.status

    assert asyncio.run(refused_websocket("vck_not-a-token")) == 401

    spdy = http(gateway_server, vcluster, token, "POST", "/api/v1/namespaces/default/pods/web/exec?command=sh",
                headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"})
    assert_status(spdy, 400, "WebSocket only")


def test_exec_logs_and_port_forward_reach_the_api_server(world, vcluster, gateway_server, tmp_path):
    """A bare control plane has no node, so a pod never runs: what is proven is that
    kubectl's WebSocket streams and log requests reach the API server as the person and
    that its answer comes back to kubectl, not that a stream to a running container works."""
    kc = kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path)
    run(kc, "run", "web", "--image=registry.example/web:1", "--restart=Never")
    no_host = 'pod web does not have a host assigned'
    result = kubectl(kc, "exec", "web", "--", "true", check=False)
    assert result.returncode != 0 and no_host in result.stderr, result.stderr
    assert run(kc, "logs", "web") == ""  # the API server's answer for a pod on no node

    # kubectl port-forwards only to a Running pod: one "running" on a node that does not exist.
    kubectl(kc, "create", "-f", "-", input=GHOST_POD)
    kubectl(kc, "patch", "pod", "ghost", "--subresource=status", "--type=merge", "-p",
            '{"status": {"phase": "Running"}}')
    result = kubectl(kc, "port-forward", "pod/ghost", "18080:80", check=False)
    assert result.returncode != 0 and '"nowhere" not found' in result.stderr, result.stderr  # the API server's answer

    exec_record = wait_for(lambda: AccessRecord.objects.filter(vcluster=vcluster, subresource="exec").first(),
                           what="the exec record")
    assert (exec_record.username, exec_record.verb, exec_record.name, exec_record.code) == (
        "teammate", "create", "web", 400)

    forced_spdy = subprocess.run(
        [str(bin_dir() / "kubectl"), f"--kubeconfig={kc}", "exec", "web", "--", "true"],
        env={**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}, capture_output=True, text=True, timeout=60)
    assert forced_spdy.returncode != 0 and "WebSocket only" in forced_spdy.stderr, forced_spdy.stderr


def test_kubectl_proxy_serves_the_vcluster_as_the_person(world, vcluster, gateway_server, tmp_path):
    """Without --append-server-path kubectl proxy drops the kubeconfig server's path
    (/kube/vclusters/<id>): the gateway knows the vcluster from the token."""
    kc = kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path)
    run(kc, "create", "configmap", "proxied")
    for flags in ([], ["--append-server-path"]):
        proxy = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={kc}", "proxy", "--port=0", *flags],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            address = proxy.stdout.readline().split("Starting to serve on ")[1].strip()
            listed = requests.get(f"http://{address}/api/v1/namespaces/default/configmaps", timeout=30).json()
            assert "proxied" in {item["metadata"]["name"] for item in listed["items"]}, (flags, listed)
            review = requests.post(f"http://{address}/apis/authentication.k8s.io/v1/selfsubjectreviews", timeout=30,
                                   json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            assert review.json()["status"]["userInfo"]["username"] == "vcportal:teammate", flags
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)


def test_logs_exec_and_top_reach_a_pod_running_on_the_real_node(world, make_real_vcluster, gateway_server,  # noqa: F811
                                                                tmp_path):
    synced = make_real_vcluster("gw-real")
    admin_kubeconfig = synced.kubeconfig.read_text()
    ensure_access_bindings(admin_kubeconfig)
    vcluster = make_vcluster(world.alpha, "running", phase=Phase.READY, kubeconfig=admin_kubeconfig)
    run_pod(synced.cluster, "default", "app", "echo printed-on-the-real-node; sleep 3600")
    kc = kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path)

    wait_for(lambda: "printed-on-the-real-node" in run(kc, "logs", "app"), timeout=30, what="the line in the logs")
    # As the conformance suite reads logs: a WebSocket with binary.k8s.io, read until the server closes it.
    log = over_websocket(gateway_server, vcluster, token_in(kc), "/api/v1/namespaces/default/pods/app/log",
                         "binary.k8s.io")
    assert b"".join(log) == b"printed-on-the-real-node\n"
    # Exec with a protocol before v5, which the API server hands to the kubelet (the syncer) as a WebSocket.
    exec_id = "/api/v1/namespaces/default/pods/app/exec?command=id&command=-u&container=main&stdout=1&stderr=1"
    messages = over_websocket(gateway_server, vcluster, token_in(kc), exec_id, "v4.channel.k8s.io")
    assert b"\x010\n" in messages, messages
    assert [json.loads(m[1:])["status"] for m in messages if m.startswith(b"\x03")] == ["Success"]
    assert run(kc, "exec", "app", "--", "id").startswith("uid=0(root) gid=0(root)")
    assert run(kc, "exec", "-i", "app", "--", "cat", input="through stdin\n") == "through stdin\n"
    exec_record = wait_for(lambda: AccessRecord.objects.filter(vcluster=vcluster, subresource="exec").first(),
                           what="the exec record")
    assert (exec_record.username, exec_record.name) == ("teammate", "app")
    # kubectl top: the vcluster's metrics.k8s.io (its syncer, the host's metrics-server), as the person.
    top = wait_for(lambda: (r := kubectl(kc, "top", "pod", "--no-headers", check=False)).returncode == 0 and r.stdout,
                   timeout=90, what="kubectl top pod through the gateway")
    assert top.split()[0] == "app"


def over_websocket(server, vcluster, token: str, path: str, protocol: str) -> list[bytes]:
    """The messages a WebSocket at `path` with `protocol` sends until the server closes it."""
    import asyncio

    import aiohttp

    url = server.url.replace("http", "ws") + f"/kube/vclusters/{vcluster.pk}{path}"

    async def read_all() -> list[bytes]:
        received = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, protocols=(protocol,), headers={"Authorization": f"Bearer {token}"},
                                          ssl=ssl.create_default_context(cafile=server.ca)) as ws:
                assert ws.protocol == protocol
                while (message := await asyncio.wait_for(ws.receive(), timeout=20)).type == aiohttp.WSMsgType.BINARY:
                    received.append(message.data)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        return received

    return asyncio.run(read_all())


def http(server, vcluster, token, method, path, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{server.url}/kube/vclusters/{vcluster.pk}{path}", headers=headers,
                            timeout=30, verify=server.ca, **kwargs)


def assert_status(response: requests.Response, code: int, words: str) -> None:
    body = response.json()
    assert (response.status_code, body["kind"], body["code"]) == (code, "Status", code), body
    assert words in body["message"], body


class WatchedKubectl:
    """A long-running kubectl whose output lines are read as they come."""

    def __init__(self, kubeconfig: str, *args: str):
        self.argv = [str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args]
        self.lines: queue.Queue[str] = queue.Queue()

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float = 20) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"kubectl printed nothing in {timeout}s; stderr so far: "
                                 f"{self.proc.stderr.read() if self.proc.poll() is not None else '(running)'}")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)
