"""The gateway's edges, with requests no kubectl would send (issue 20): paths that try to
climb out of a vcluster or name another team's, encodings of those, ids that are not
ids, headers that try to pick an identity or are oversized, and bodies a tenant shapes
to break the gateway's own reading of them; and requests sent both ways, through the
gateway and straight to the API server as the same person, answered alike. Each gets a clear refusal (a Kubernetes
Status) or the API server's own answer, never a 5xx, never another vcluster, and changes
nothing. Another team's vcluster points at a port where nothing listens: a request that
reached for it would answer 503."""

import base64
import json

import pytest
import requests
import yaml

from tests.portal.conftest import make_vcluster
from vclusters.models import Phase

from .conftest import ADMIN_KUBECONFIG
from .test_kubectl import kubeconfig_for, token_in

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def edges(world, vcluster, gateway_server, tmp_path):
    theirs = make_vcluster(world.beta, "theirs", phase=Phase.READY, kubeconfig=ADMIN_KUBECONFIG)
    token = token_in(kubeconfig_for(world.teammate, vcluster, gateway_server, tmp_path))

    def send(method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        # A prepared request, so `requests` normalises nothing in the path.
        request = requests.Request(method, gateway_server.url + path,
                                   headers={"Authorization": f"Bearer {token}", **(headers or {})}, **kwargs)
        prepared = request.prepare()
        prepared.url = gateway_server.url + path
        with requests.Session() as session:
            return session.send(prepared, verify=gateway_server.ca, timeout=30, allow_redirects=False)

    return vcluster.pk, theirs.pk, send


def assert_status(response: requests.Response, codes: set[int]) -> None:
    assert response.status_code in codes, (response.status_code, response.text[:300])
    body = response.json()
    assert body["kind"] == "Status" and body["code"] == response.status_code, body


def configmaps(send, mine) -> list[str]:
    listed = send("GET", f"/kube/vclusters/{mine}/api/v1/namespaces/default/configmaps").json()
    return sorted(item["metadata"]["name"] for item in listed["items"])


def test_paths_never_leave_the_vcluster_or_reach_another(edges):
    mine, theirs, send = edges
    before = configmaps(send, mine)
    refused_by_the_gateway = [
        f"/kube/vclusters/{theirs}/api/v1/namespaces",
        f"/kube/vclusters/%{ord(str(mine)[0]):x}{str(mine)[1:]}/api",  # an encoded digit
        f"/kube/vclusters/{mine}%2F..%2F{theirs}/api",
        "/kube/vclusters/99999999999999999999/api",
        "/kube/vclusters/0/api", "/kube/vclusters/-1/api", "/kube/vclusters/abc/api",
        "/kube/../api/v1/vclusters/", "/kube/", "/kube/vclusters/",
    ]
    for path in refused_by_the_gateway:
        assert_status(send("GET", path), {401, 403, 404})
    answered_by_my_api_server = [
        f"/kube/vclusters/{mine}/../{theirs}/api/v1/namespaces",
        f"/kube/vclusters/{mine}/%2e%2e/{theirs}/api/v1/namespaces",
        f"/kube/vclusters/{mine}/%252e%252e/%252e%252e/api",
        f"/kube/vclusters/{mine}/api/v1/namespaces/%2e%2e%2fkube-system/secrets",
        f"/kube/vclusters/{mine}/api%00/v1",
        f"/kube/vclusters/{mine}//api//v1",
    ]
    for path in answered_by_my_api_server:
        response = send("GET", path)
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
    assert configmaps(send, mine) == before


def test_headers_cannot_pick_an_identity_and_odd_ones_are_refused(edges):
    mine, _, send = edges
    review = f"/kube/vclusters/{mine}/apis/authentication.k8s.io/v1/selfsubjectreviews"
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    for impersonation in [{"Impersonate-User": "system:admin"}, {"Impersonate-Group": "system:masters"},
                          {"Impersonate-Extra-Scopes": "all"}, {"Impersonate-Uid": "0"}]:
        refused = send("POST", review, headers={**impersonation, "Content-Type": "application/json"}, data=body)
        assert_status(refused, {403})
        assert "kubectl --as" in refused.json()["message"]
    user = send("POST", review, headers={"Content-Type": "application/json"}, data=body).json()["status"]["userInfo"]
    assert user["username"] == "vcportal:teammate" and "system:masters" not in user["groups"]

    for authorization in ["Bearer ", "Bearer " + "x" * 10_000, "Basic Zm9vOmJhcg==", "Bearer a b c", "Token abc"]:
        assert_status(send("GET", f"/kube/vclusters/{mine}/api", headers={"Authorization": authorization}), {401})
    big = send("GET", f"/kube/vclusters/{mine}/api", headers={"X-Filler": "x" * 200_000})
    assert big.status_code == 200  # within the API server's own limit, as it would answer
    try:
        oversized = send("GET", f"/kube/vclusters/{mine}/api", headers={"X-Filler": "x" * (2 * 2**20)})
    except requests.ConnectionError:
        return  # the server closed the connection on it: a refusal too
    assert_status(oversized, {431})


def test_bodies_shaped_against_the_gateway_are_the_api_server_s_business(edges):
    mine, _, send = edges
    before = configmaps(send, mine)
    url = f"/kube/vclusters/{mine}/api/v1/namespaces/default/configmaps"
    json_headers = {"Content-Type": "application/json"}
    for body in ['{"metadata": ' + "[" * 50_000 + "]" * 50_000 + "}",  # deeper than Python's json can read
                 '{"metadata": 5, "kind": "ConfigMap", "apiVersion": "v1"}',
                 '{"metadata": {"name": ["list"]}}',
                 "{not json"]:
        response = send("POST", url, headers=json_headers, data=body)
        assert 400 <= response.status_code < 500, (body[:40], response.status_code, response.text[:300])
    assert_status(send("POST", url, headers=json_headers, data=b"{" + b" " * (9 * 2**20) + b"}"), {413})
    assert configmaps(send, mine) == before


def test_requests_through_the_gateway_are_answered_as_the_api_server_answers_them_directly(
        edges, vcluster_control_plane, tmp_path):
    """Request by request, the gateway adds nothing the caller did not send and keeps the
    API server's answer, redirects kept inside the vcluster's gateway path."""
    mine, _, send = edges
    direct = direct_sender(vcluster_control_plane, tmp_path)
    # A pod whose proxy answers with a redirect before calling anything (its address, in
    # TEST-NET, is never dialled; no node runs it).
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "redirector"},
           "spec": {"containers": [{"name": "c", "image": "none"}]}}
    assert direct("POST", "/api/v1/namespaces/default/pods", {"Content-Type": "application/json"},
                  json.dumps(pod)).status_code == 201
    running = direct("PATCH", "/api/v1/namespaces/default/pods/redirector/status",
                     {"Content-Type": "application/merge-patch+json"},
                     json.dumps({"status": {"phase": "Running", "podIP": "192.0.2.10",
                                            "podIPs": [{"ip": "192.0.2.10"}]}}))
    assert running.status_code == 200, running.text
    configmap = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "untyped-"}})
    cases = [
        ("POST", "/api/v1/namespaces/default/configmaps", {}, configmap),  # a body without a Content-Type
        ("GET", "/api/v1/namespaces/default/configmaps", {}, None),  # no Accept
        ("GET", "/api/v1/namespaces/default/configmaps", {"Accept": "application/yaml"}, None),
        ("GET", "/api/v1/namespaces/default/pods/redirector/proxy", {}, None),  # redirected to .../proxy/
        ("GET", "/api/v1/namespaces/default/pods/redirector:80/proxy?x=1", {}, None),
    ]
    redirects = []
    for method, path, headers, body in cases:
        straight = direct(method, path, headers, body)
        # by its path, and by the token alone (kubectl proxy drops the server URL's path)
        for root in (f"/kube/vclusters/{mine}", ""):
            through = send(method, root + path, headers, data=body)
            assert (through.status_code, through.headers.get("Content-Type")) == (
                straight.status_code, straight.headers.get("Content-Type")), (method, root + path, through.text[:200])
            if "Location" in straight.headers:
                redirects.append(through.headers["Location"])
                assert through.headers["Location"] == root + straight.headers["Location"]
    assert len(redirects) == 4, redirects


def test_a_request_addressed_by_its_token_alone_reaches_that_vcluster_only(edges, world, gateway_server, tmp_path):
    """Outside /kube/, a personal vcluster token picks the vcluster (kubectl proxy's
    requests); nothing in the path or headers picks another, the portal's own pages and
    REST API never take such a token, and a revoked one is refused."""
    from accounts.services import create_token
    from gateway.models import AccessToken
    from gateway.services import revoke_token

    from .conftest import actor

    mine, theirs, send = edges
    assert send("GET", "/api/v1/namespaces/default/configmaps").json()["kind"] == "ConfigMapList"
    assert configmaps(send, mine) == sorted(
        item["metadata"]["name"] for item in send("GET", "/api/v1/namespaces/default/configmaps").json()["items"])
    for path in [f"/kube%2Fvclusters%2F{theirs}/api/v1/namespaces", f"/kube/vclusters/{theirs}/api"]:
        assert_status(send("GET", path), {401, 404})
    # The portal's REST API path, asked with a vcluster token: the vcluster's API server answers.
    assert_status(send("GET", "/api/v1/vclusters/"), {404})
    assert_status(send("GET", "/api/v1/namespaces", headers={"Impersonate-User": "admin"}), {403})

    _, api_token = create_token(actor(world.teammate), name="rest")
    portal = requests.get(gateway_server.url + "/api/v1/namespaces", headers={"Authorization": f"Bearer {api_token}"},
                          verify=gateway_server.ca, timeout=30)
    assert portal.status_code == 404 and "NamespaceList" not in portal.text  # Django's answer, not a vcluster's

    revoke_token(actor(world.teammate), AccessToken.objects.get(vcluster_id=mine, user=world.teammate))
    assert_status(send("GET", "/api/v1/namespaces"), {401})


def direct_sender(cluster, tmp_path):
    """Requests straight to `cluster`'s API server with its admin certificate."""
    user = yaml.safe_load(cluster.admin_kubeconfig.read_text())["users"][0]["user"]
    cert, key = tmp_path / "admin.crt", tmp_path / "admin.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))

    def send(method: str, path: str, headers: dict, body: str | None) -> requests.Response:
        prepared = requests.Request(method, cluster.server + path, headers=headers, data=body).prepare()
        with requests.Session() as session:  # prepared alone: no headers of the session's
            return session.send(prepared, cert=(str(cert), str(key)), verify=str(cluster.ca_cert_path), timeout=30,
                                allow_redirects=False)
    return send
