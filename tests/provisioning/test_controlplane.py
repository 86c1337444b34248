"""The `kubernetes` runtime's objects (provisioning.runtimes.kubeobjects): pure functions, plus
one check by a real API server that its pod is admitted under Pod Security `restricted`."""

import base64
import ipaddress

import pytest
import yaml
from cryptography import x509
from kubernetes import client

from controlplane.components import WEBHOOK_CREDENTIALS
from provisioning.runtimes import kubeobjects as cp
from provisioning import manifests
from syncer.config import load
from syncer.kube import load_kubeconfig
from syncer.policy import TenantPolicy

LABELS = manifests.labels(7, "alpha", "test")
NS = "vc-7-alpha-dev"


def pod_spec(**kwargs) -> dict:
    return cp.statefulset(NS, LABELS, image="registry/runtime:1", storage_class=None, hash_="h", **kwargs)[
        "spec"]["template"]["spec"]


def sans(cert_pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) if isinstance(n.value, ipaddress.IPv4Address) else n.value for n in names}


@pytest.fixture(scope="module")
def keys():
    return cp.new_keys("dev", cp.server_names(NS, "10.96.3.4", "203.0.113.9"))


def test_every_container_is_restricted_and_bounded():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in cp.containers(spec):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory", "ephemeral-storage"}, container["name"]


def test_quota_share_is_the_pods_limits_and_its_service():
    spec = pod_spec()
    share = cp.share(cp.Access("nodeport", "198.51.100.1"))
    every = cp.containers(spec)
    assert share["cpu_millicores"] == sum(cp._millicores(c["resources"]["limits"]["cpu"]) for c in every)
    assert share["memory_bytes"] == sum(cp._bytes(c["resources"]["limits"]["memory"]) for c in every)
    assert (share["pods"], share["nodeports"], share["loadbalancers"]) == (1, 1, 0)
    assert cp.share(cp.Access("loadbalancer"))["loadbalancers"] == 1
    assert cp.share(cp.Access("ingress", "vc.example.com"))["nodeports"] == 0


def test_each_container_mounts_only_the_keys_it_needs():
    spec = pod_spec()
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = {}
    for container in cp.containers(spec):
        for mount in container["volumeMounts"]:
            volume = volumes.get(mount["name"], {})  # "data" is the claim template
            if volume.get("secret", {}).get("secretName") == cp.PKI_SECRET:
                mounted[container["name"]] = {item["key"] for item in volume["secret"]["items"]}
    assert "kine" not in mounted
    assert [name for name, files in mounted.items() if "ca.key" in files] == ["kube-controller-manager"]
    token_holders = [c["name"] for c in cp.containers(spec)
                     if any(m["name"] == "host-token" for m in c["volumeMounts"])]
    assert token_holders == ["syncer"], "only the syncer holds host credentials"


def test_the_aggregation_layer_has_keys_of_its_own_and_only_the_api_server_holds_its_client_key(keys):
    spec = pod_spec()
    holders = {c["name"]: {i["key"] for v in spec["volumes"] if v.get("secret", {}).get("secretName") == cp.PKI_SECRET
                           and v["name"] in {m["name"] for m in c["volumeMounts"]} for i in v["secret"]["items"]}
               for c in cp.containers(spec)}
    assert [name for name, files in holders.items() if "front-proxy-client.key" in files] == ["kube-apiserver"]
    assert "front-proxy-ca.crt" in holders["syncer"] and "syncer-metrics.key" in holders["syncer"]
    assert "front-proxy-ca.key" not in keys  # nobody can sign another front-proxy certificate
    issuer = x509.load_pem_x509_certificate(keys["front-proxy-client.crt"].encode()).issuer
    assert issuer == x509.load_pem_x509_certificate(keys["front-proxy-ca.crt"].encode()).subject
    assert issuer != x509.load_pem_x509_certificate(keys["ca.crt"].encode()).subject
    assert sans(keys["syncer-metrics.crt"]) == {"vcportal-metrics.kube-system.svc"}
    config = yaml.safe_load(cp.syncer_files(vcluster="dev", namespace=NS, service_ip="10.96.3.4",
                                              host_server="https://10.96.0.1", policy=TenantPolicy())["syncer.yaml"])
    assert config["metrics_address"] == cp.METRICS_ADDRESS
    assert config["metrics_client_ca"] == f"{cp.PKI_DIR}/front-proxy-ca.crt"


def test_a_control_plane_made_before_metrics_gets_their_keys_once(keys):
    old = {k: v for k, v in keys.items() if not k.startswith(("front-proxy", "syncer-metrics", "egress"))}
    completed = cp.complete_keys(old, "dev")
    assert set(completed) == set(keys)
    assert completed["ca.crt"] == keys["ca.crt"] and completed["kube-apiserver.crt"] == keys["kube-apiserver.crt"]
    assert cp.complete_keys(completed, "dev") == completed


def test_the_api_servers_way_into_the_cluster_is_the_syncers_socket_on_a_volume_of_theirs_alone(keys):
    spec = pod_spec()
    egress_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v} - {"tmp"}
    sharing = {c["name"] for c in cp.containers(spec) for m in c["volumeMounts"] if m["name"] in egress_volumes}
    assert sharing == {"kube-apiserver", "syncer"}
    apiserver = next(c for c in cp.containers(spec) if c["name"] == "kube-apiserver")
    selector_file = f"{cp.PKI_DIR}/egress-selector.yaml"
    assert f"--egress-selector-config-file={selector_file}" in apiserver["command"]
    selector = yaml.safe_load(keys["egress-selector.yaml"])
    assert {s["name"]: s["connection"]["transport"]["uds"]["udsName"] for s in selector["egressSelections"]} == {
        "cluster": cp.EGRESS_SOCKET, "controlplane": cp.EGRESS_SOCKET}
    config = yaml.safe_load(cp.syncer_files(vcluster="dev", namespace=NS, service_ip="10.96.3.4",
                                              host_server="https://10.96.0.1", policy=TenantPolicy())["syncer.yaml"])
    assert config["egress_socket"] == cp.EGRESS_SOCKET
    made_before = {k: v for k, v in keys.items() if k != "egress-selector.yaml"}
    assert cp.complete_keys(made_before, "dev") == keys


def test_the_api_server_calls_webhooks_with_the_front_proxy_certificate(keys):
    """The syncer's webhooks (syncer.admission) let in only that certificate."""
    spec = pod_spec()
    apiserver = next(c for c in cp.containers(spec) if c["name"] == "kube-apiserver")
    assert f"--admission-control-config-file={cp.PKI_DIR}/admission.yaml" in apiserver["command"]
    plugins = yaml.safe_load(keys["admission.yaml"])["plugins"]
    assert [(p["name"], p["configuration"]["kubeConfigFile"]) for p in plugins] == [
        ("MutatingAdmissionWebhook", f"{cp.PKI_DIR}/{WEBHOOK_CREDENTIALS}"),
        ("ValidatingAdmissionWebhook", f"{cp.PKI_DIR}/{WEBHOOK_CREDENTIALS}")]
    users = yaml.safe_load(keys[WEBHOOK_CREDENTIALS])["users"]
    assert users == [{"name": "*", "user": {"client-certificate": f"{cp.PKI_DIR}/front-proxy-client.crt",
                                            "client-key": f"{cp.PKI_DIR}/front-proxy-client.key"}}]
    holders = [c["name"] for c in cp.containers(spec) for v in spec["volumes"]
               if v["name"] in {m["name"] for m in c["volumeMounts"]}
               and WEBHOOK_CREDENTIALS in {i["key"] for i in v.get("secret", {}).get("items", [])}]
    assert holders == ["kube-apiserver"]
    made_before = {k: v for k, v in keys.items() if k not in ("admission.yaml", WEBHOOK_CREDENTIALS)}
    assert cp.complete_keys(made_before, "dev") == keys


def test_deleting_the_statefulset_keeps_its_claim():
    spec = cp.statefulset(NS, LABELS, image="registry/runtime:1", storage_class=None, hash_="h")["spec"]
    assert spec.get("persistentVolumeClaimRetentionPolicy", {}).get("whenDeleted", "Retain") == "Retain"
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] + f"-{cp.POD}" == cp.PVC


def test_the_api_server_is_up_before_what_needs_it_starts():
    spec = pod_spec()
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
        ("kine", "Always"), ("syncer", "Always"), ("kube-apiserver", "Always")]
    assert spec["initContainers"][-1]["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert [c["name"] for c in spec["containers"]] == ["kube-controller-manager"]


def test_only_the_api_port_is_offered_beyond_the_pod():
    spec = pod_spec()
    assert [p["containerPort"] for c in cp.containers(spec) for p in c.get("ports", [])] == [cp.API_PORT]
    commands = " ".join(" ".join(c["command"]) for c in cp.containers(spec))
    assert "--listen-address=127.0.0.1:2379" in commands and "--bind-address=127.0.0.1" in commands
    policy = cp.network_policy(NS, LABELS, [("192.0.2.10", 6443)])
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": cp.API_PORT}]}]
    assert policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]


def test_api_certificate_names_every_way_in(keys):
    names = sans(keys["kube-apiserver.crt"])
    assert {"10.96.3.4", "203.0.113.9", "127.0.0.1", "kubernetes.default.svc", f"{cp.SERVICE}.{NS}.svc"} <= names
    assert "172.20.0.1" in cp.server_names(NS, "172.20.3.4", "a", "172.20.0.0/16"), "inside: the host's range"
    again = cp.reissue_api_certificate(keys, cp.server_names(NS, "10.96.3.4", "vc.example.com"))
    assert "vc.example.com" in sans(again["kube-apiserver.crt"]) and again["ca.key"] == keys["ca.key"]


def test_admin_kubeconfig_is_signed_by_the_vclusters_ca(keys):
    doc = yaml.safe_load(cp.admin_kubeconfig(keys, "dev", "https://203.0.113.9:30443"))
    assert doc["clusters"][0]["cluster"]["server"] == "https://203.0.113.9:30443"
    cert = x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    ca = x509.load_pem_x509_certificate(keys["ca.crt"].encode())
    cert.verify_directly_issued_by(ca)
    assert "system:masters" in cert.subject.rfc4514_string()


def test_server_url_per_access_mode():
    assert cp.server_url(cp.Access("nodeport", "198.51.100.1"), 31000) == "https://198.51.100.1:31000"
    assert cp.server_url(cp.Access("nodeport", "2001:db8::1"), 31000) == "https://[2001:db8::1]:31000"
    assert cp.server_url(cp.Access("loadbalancer", "lb.example.com"), 31000) == "https://lb.example.com"
    host = cp.ingress_host(NS, "vc.example.com")
    assert cp.server_url(cp.Access("ingress", host), None) == f"https://{NS}.vc.example.com"


def test_syncer_files_are_a_valid_config_with_in_cluster_credentials(tmp_path):
    files = cp.syncer_files(vcluster="vc7", namespace=NS, service_ip="10.96.3.4", host_server="https://10.96.0.1:443",
                            policy=TenantPolicy(), hosts_image="registry.example/busybox:1.37")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = load(tmp_path / "syncer.yaml")
    assert config.api_address() == ("10.96.3.4", cp.SERVICE_PORT) and config.host_namespace == NS
    assert config.hosts_image == "registry.example/busybox:1.37", "pods' /etc/hosts writer, as on the local runtime"
    host = yaml.safe_load(files["host.kubeconfig"])
    assert host["users"][0]["user"] == {"tokenFile": f"{cp.HOST_TOKEN_DIR}/token"}
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "ca.crt").write_text(cp.new_keys("x", ["127.0.0.1"])["ca.crt"])
    text = files["host.kubeconfig"].replace(cp.HOST_TOKEN_DIR, str(tmp_path))
    (tmp_path / "host.kubeconfig").write_text(text)
    assert load_kubeconfig(tmp_path / "host.kubeconfig").token == "t0ken"


def test_config_hash_follows_the_mounted_files(keys):
    files = {"syncer.yaml": "a"}
    assert cp.config_hash(keys, files) == cp.config_hash(dict(keys), dict(files))
    assert cp.config_hash(keys, files) != cp.config_hash(keys, {"syncer.yaml": "b"})


def test_recreated_service_asks_for_its_old_address_and_port():
    access = cp.Access("nodeport", "198.51.100.1")
    spec = cp.service(NS, LABELS, access, "10.96.3.4", 31000)["spec"]
    assert spec["clusterIP"] == "10.96.3.4" and spec["ports"][0]["nodePort"] == 31000 and spec["type"] == "NodePort"
    assert "clusterIP" not in cp.service(NS, LABELS, access, None, None)["spec"]
    assert cp.service(NS, LABELS, cp.Access("ingress", "x"), "10.96.3.4", 31000)["spec"]["type"] == "ClusterIP"


def test_quota_makes_room_for_the_control_planes_node_port():
    total = manifests.add_shares({"cpu_millicores": 1000, "pods": 5}, cp.share(cp.Access("nodeport", "a")))
    hard = manifests.resource_quota(NS, LABELS, **total)["spec"]["hard"]
    assert hard["services.nodeports"] == "1" and hard["services.loadbalancers"] == "0" and hard["pods"] == "6"


def test_restricted_pod_security_admits_the_pod(host_cluster):
    """The host's PodSecurity admission judges the pod template (server-side dry run)."""
    api = host_cluster.api_client()
    core = client.CoreV1Api(api)
    ns = "cp-restricted-check"
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    try:
        core.create_namespace({"metadata": {"name": ns, "labels": labels}})
    except client.ApiException as exc:
        assert exc.status == 409
    try:
        core.create_namespaced_service_account(ns, {"metadata": {"name": "vcportal-syncer"}})
    except client.ApiException as exc:
        assert exc.status == 409
    template = cp.statefulset(ns, LABELS, image="registry/runtime:1", storage_class=None, hash_="h")["spec"]["template"]
    spec = {**template["spec"], "volumes": [*template["spec"]["volumes"],
                                            {"name": cp.DATA, "emptyDir": {}}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "control-plane", "namespace": ns}, "spec": spec}
    created = core.create_namespaced_pod(ns, pod, dry_run="All")
    assert created.metadata.name == "control-plane"
