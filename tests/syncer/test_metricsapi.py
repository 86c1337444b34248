"""The vcluster's metrics.k8s.io (syncer.metricsapi) as pure functions: figures named
as in the vcluster, nodes summed from the tenant's own pods, its registration, who the
front proxy says is calling. Served for real in test_metrics.py."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from syncer import config, metricsapi
from syncer.kinds.services import NOT_SYNCED

NOW = "2026-12-06T10:00:00Z"


def vpod(name: str, namespace: str = "default", node: str = "realnode-0", uid: str = "u") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"{uid}-{name}", "labels": {"app": name}},
            "spec": {"nodeName": node}}


def figures(cpu: str, memory: str, container: str = "main") -> dict:
    return {"timestamp": "2026-12-06T09:59:50Z", "window": "15.2s",
            "containers": [{"name": container, "usage": {"cpu": cpu, "memory": memory}}]}


@pytest.mark.parametrize("text, value", [
    ("250m", Decimal("0.25")), ("1234567n", Decimal("0.001234567")), ("2", Decimal(2)), ("64Mi", Decimal(64 * 2**20)),
    ("1500Ki", Decimal(1500 * 1024)), ("1e3", Decimal(1000)), ("3u", Decimal("0.000003")),
])
def test_quantities_are_read_as_kubernetes_writes_them(text, value):
    assert metricsapi.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "12x", "m", "-1", "1.2.3Mi"])
def test_a_malformed_quantity_is_refused(text):
    with pytest.raises(ValueError):
        metricsapi.parse_quantity(text)


def test_usages_sum_to_nanocores_and_kibibytes():
    assert metricsapi.usage_sum([{"cpu": "1234567n", "memory": "1024Ki"}, {"cpu": "5m", "memory": "1Mi"}]) == \
        {"cpu": "6234567n", "memory": "2048Ki"}
    assert metricsapi.usage_sum([]) == {"cpu": "0n", "memory": "0Ki"}


def test_a_pods_figures_are_its_host_copys_under_its_virtual_name_and_labels():
    pods = [vpod("web"), vpod("new")]
    host = {"web-x-default-x-vc": figures("5m", "10Mi"), "someone-elses": figures("900m", "1Gi")}
    items = metricsapi.pod_metrics(pods, host, lambda p: f"{p['metadata']['name']}-x-default-x-vc", NOW)
    assert items == [{
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW, "labels": {"app": "web"}},
        "timestamp": "2026-12-06T09:59:50Z", "window": "15.2s",
        "containers": [{"name": "main", "usage": {"cpu": "5m", "memory": "10Mi"}}],
    }]  # `new` has no figures yet: left out, as metrics-server leaves out a pod it has not scraped


def test_a_pod_whose_host_copy_is_not_the_syncers_gets_no_figures():
    items = metricsapi.pod_metrics([vpod("web")], {"web-x-default-x-vc": figures("5m", "10Mi")}, lambda p: None, NOW)
    assert items == []


def test_a_nodes_figures_are_the_sum_of_the_tenants_own_pods_on_it_never_the_nodes_total():
    pods = [vpod("a"), vpod("b"), vpod("c", node="other")]
    by_name = {"a": figures("100m", "10Mi"), "b": figures("50m", "6Mi"), "c": figures("7m", "1Mi")}
    items = metricsapi.pod_metrics(pods, by_name, lambda p: p["metadata"]["name"], NOW)
    nodes = [{"metadata": {"name": "realnode-0", "labels": {"type": "real"}}}, {"metadata": {"name": "idle"}}]
    result = metricsapi.node_metrics(nodes, items, pods, NOW)
    assert result[0]["usage"] == {"cpu": "150000000n", "memory": "16384Ki"}
    assert result[0]["metadata"] == {"name": "realnode-0", "creationTimestamp": NOW, "labels": {"type": "real"}}
    assert result[0]["window"] == "15.2s"
    assert result[1]["usage"] == {"cpu": "0n", "memory": "0Ki"} and result[1]["timestamp"] == NOW


def test_registration_sends_the_group_to_the_syncer_and_stays_off_the_host():
    (_, service), (_, apiservice), (_, reader) = metricsapi.registration(("127.0.0.1", 10251), b"CA PEM")
    assert service["spec"] == {"type": "ExternalName", "externalName": "127.0.0.1",
                               "ports": [{"name": "https", "port": 10251}]}
    assert apiservice["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    assert apiservice["spec"]["service"] == {"namespace": "kube-system", "name": "vcportal-metrics", "port": 10251}
    assert base64.b64decode(apiservice["spec"]["caBundle"]) == b"CA PEM"
    assert "insecureSkipTLSVerify" not in apiservice["spec"]
    assert metricsapi.SERVICE_HOST == "vcportal-metrics.kube-system.svc"
    assert "kube-system/vcportal-metrics" in NOT_SYNCED  # an ExternalName to the syncer's loopback, never copied
    assert reader["rules"] == [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                                "verbs": ["get", "list"]}]
    assert set(reader["metadata"]["labels"]) == {f"rbac.authorization.k8s.io/aggregate-to-{r}"
                                                 for r in ("view", "edit", "admin")}


class Headers(dict):
    def get_all(self, name):
        return [v for k, v in self.items() if k.split("#")[0] == name] or None

    def items(self):
        return [(k.split("#")[0], v) for k, v in super().items()]

    def get(self, name, default=None):
        return next((v for k, v in self.items() if k == name), default)


def test_the_caller_is_who_the_front_proxy_says():
    headers = Headers({"X-Remote-User": "ada", "X-Remote-Group#1": "devs", "X-Remote-Group#2": "system:authenticated",
                       "X-Remote-Extra-Scopes": "a", "X-Remote-Extra-Acme.com%2fteam": "x"})
    assert metricsapi.caller(headers) == {"user": "ada", "groups": ["devs", "system:authenticated"],
                                          "extra": {"scopes": ["a"], "acme.com/team": ["x"]}}
    assert metricsapi.caller(Headers({"X-Remote-Group": "system:masters"})) is None


def test_the_metrics_endpoint_is_optional_but_whole(tmp_path):
    base = {"vcluster": "vc", "virtual_kubeconfig": "v", "host_kubeconfig": "h", "host_namespace": "ns"}
    assert config.SyncerConfig(**base).metrics_listen_address() is None
    with pytest.raises(config.ConfigError, match="metrics_address needs metrics_cert"):
        config.SyncerConfig(**base, metrics_address="127.0.0.1:10251", metrics_cert="m.crt")
    whole = config.SyncerConfig(**base, metrics_address="127.0.0.1:10251", metrics_cert="m.crt", metrics_key="m.key",
                                metrics_ca="ca.crt", metrics_client_ca="fp.crt")
    assert whole.metrics_listen_address() == ("127.0.0.1", 10251)
