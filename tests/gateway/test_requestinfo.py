import pytest

from gateway.requestinfo import RequestInfo, is_streaming, parse


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/api/v1/namespaces", "", RequestInfo("list", "", "namespaces")),
    ("GET", "/api/v1/namespaces/dev", "", RequestInfo("get", "", "namespaces", name="dev")),
    ("PUT", "/api/v1/namespaces/dev/finalize", "", RequestInfo("update", "", "namespaces", "finalize", name="dev")),
    ("POST", "/api/v1/namespaces/dev/configmaps", "", RequestInfo("create", "", "configmaps", namespace="dev")),
    ("PATCH", "/api/v1/namespaces/dev/configmaps/app", "", RequestInfo("patch", "", "configmaps", namespace="dev", name="app")),
    ("DELETE", "/api/v1/namespaces/dev/pods", "", RequestInfo("deletecollection", "", "pods", namespace="dev")),
    ("DELETE", "/apis/apps/v1/namespaces/dev/deployments/web", "",
     RequestInfo("delete", "apps", "deployments", namespace="dev", name="web")),
    ("PUT", "/apis/apps/v1/namespaces/dev/deployments/web/scale", "",
     RequestInfo("update", "apps", "deployments", "scale", "dev", "web")),
    ("GET", "/api/v1/namespaces/dev/pods", "watch=true&resourceVersion=1", RequestInfo("watch", "", "pods", namespace="dev")),
    ("GET", "/api/v1/watch/namespaces/dev/pods", "", RequestInfo("watch", "", "pods", namespace="dev")),
    ("GET", "/api/v1/namespaces/dev/pods/web/exec", "command=sh", RequestInfo("create", "", "pods", "exec", "dev", "web")),
    ("GET", "/api/v1/namespaces/dev/pods/web/log", "follow=true", RequestInfo("get", "", "pods", "log", "dev", "web")),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "",
     RequestInfo("create", "rbac.authorization.k8s.io", "clusterrolebindings")),
    ("GET", "/version", "", RequestInfo("get", is_resource=False)),
    ("GET", "/apis/apps/v1", "", RequestInfo("get", is_resource=False)),
])
def test_it_reads_requests_as_the_api_server_does(method, path, query, expected):
    assert parse(method, path, query) == expected


def test_writes_are_mutating_and_reads_are_not():
    assert parse("POST", "/api/v1/namespaces").mutating
    assert parse("GET", "/api/v1/namespaces/dev/pods/web/exec").mutating
    assert not parse("GET", "/api/v1/namespaces").mutating
    assert not parse("GET", "/api/v1/pods", "watch=1").mutating


def test_watches_and_followed_logs_stream():
    assert is_streaming(parse("GET", "/api/v1/pods", "watch=1"), "watch=1")
    log = "/api/v1/namespaces/dev/pods/web/log"
    assert is_streaming(parse("GET", log, "follow=true"), "follow=true")
    assert not is_streaming(parse("GET", log, ""), "")
    assert not is_streaming(parse("GET", "/api/v1/pods"), "")
