"""The chart rendered with several value sets (`helm template`): every container runs
under the restricted Pod Security standard with requests and limits, no secret sits in a
pod spec, and the embedded API server accepts every object (a server-side dry run) without
a Pod Security warning. Bad values fail before anything is created, naming the value."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from kubernetes import client

from localkube.binaries import bin_dir
from provisioning import hostrbac, manifests
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from tests.kube.helpers import new_namespace

from .helpers import CHART, helm, local_images, pod_specs, render

VALUE_SETS = {
    "defaults": [],
    "external stores, existing secret, ingress": [
        "--set", "database.url=postgres://portal:s3cret@db.example.com:5432/vcportal",
        "--set", "redis.url=redis://:s3cret@redis.example.com:6379/0", "--set", "secrets.existingSecret=portal-keys",
        "--set", "ingress.enabled=true", "--set", "ingress.host=vcportal.example.com",
        "--set", "ingress.tlsSecretName=vcportal-tls", "--set", "gateway.tls.enabled=false",
        "--set", "url=https://vcportal.example.com"],
    "node ports, disruption budget, no policies, own gateway certificate, no admin": [
        "--set", "web.service.type=NodePort", "--set", "web.service.httpNodePort=30080",
        "--set", "web.podDisruptionBudget.enabled=true", "--set", "networkPolicy.enabled=false",
        "--set", "gateway.tls.existingSecret=gateway-cert", "--set", "admin.create=false",
        "--set", "url=http://192.0.2.10:30080", "--set", "gateway.url=https://192.0.2.10:30443"],
    "stores from existing secrets": [
        "--set", "database.existingSecret.name=db", "--set", "database.existingSecret.key=url",
        "--set", "redis.existingSecret.name=broker", "--set", "redis.existingSecret.key=url"],
}
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
# Environment variables that carry a secret: only ever by reference.
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|KEYS?$|TOKEN|AUTH|DATABASE_URL|REDIS_URL")


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_container_is_restricted_and_bounded_and_takes_secrets_by_reference(values):
    specs = pod_specs(render(*values))
    assert {name.split("-", 1)[0] for name in specs} >= {"Deployment/t"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert (pod["runAsNonRoot"], pod["seccompProfile"]) == (True, {"type": "RuntimeDefault"}), name
        for container in containers(spec):
            where = f"{name} {container['name']}"
            context = container["securityContext"]
            assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                               "capabilities": {"drop": ["ALL"]}}, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys() and "memory" in resources["limits"], where
            for variable in container.get("env", []):
                if SECRET_NAMES.search(variable["name"]):
                    assert "value" not in variable and "secretKeyRef" in variable["valueFrom"], where
            assert "s3cret" not in yaml.safe_dump(container), where


def test_external_stores_bundle_nothing_and_the_secret_holds_their_urls():
    objects = render(*VALUE_SETS["external stores, existing secret, ingress"])
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not {name for kind, name in kinds if kind == "StatefulSet"}
    secret = next(o for o in objects if o["kind"] == "Secret")
    # The keys come from portal-keys; the metrics token is always the chart's own.
    assert set(secret["stringData"]) == {"metrics-token", "database-url", "redis-url"}
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["vcportal.example.com"], "secretName": "vcportal-tls"}]


def test_beat_is_one_replica_replaced_not_rolled_and_only_web_and_worker_hold_an_api_token():
    specs = pod_specs(objects := render())
    beat = next(o for o in objects if o["metadata"]["name"] == "t-vcportal-beat")
    assert (beat["spec"]["replicas"], beat["spec"]["strategy"]) == (1, {"type": "Recreate"})
    with_token = {name for name, spec in specs.items() if spec.get("automountServiceAccountToken", True)}
    # The migration Job registers this cluster as a host cluster, which checks the token.
    assert with_token == {"Deployment/t-vcportal-web", "Deployment/t-vcportal-worker", "Job/t-vcportal-migrate-1"}
    without_host = pod_specs(render("--set", "hostCluster.enabled=false"))
    assert {name for name, spec in without_host.items() if spec.get("automountServiceAccountToken", True)} == {
        "Deployment/t-vcportal-web", "Deployment/t-vcportal-worker"}


def _installation(objects: list[dict]) -> str:
    web = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-web"))
    env = {e["name"]: e.get("value") for c in web["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    return env["VCPORTAL_INSTALLATION"]


def test_the_installation_name_is_a_short_namespace_name_and_long_releases_stay_apart():
    """The portal takes it as its installation name (docs/installation.md): at most 40
    characters, so the host's record namespace `vcportal-installation-<name>` fits."""
    assert _installation(render()) == "vcportal-t"
    one, two = (render("--namespace", "platform-" + "x" * 40 + suffix) for suffix in ("a", "b"))
    names = {_installation(one), _installation(two)}
    assert len(names) == 2 and all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", n) for n in names), names
    policy = next(o for o in one if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"].endswith("-host"))
    assert f"vcportal.io/installation={_installation(one)}" in yaml.safe_dump(policy, width=1000)


def test_the_chart_holds_the_host_rules_the_code_derives():
    assert hostrbac.CHART_FILE.read_text() == hostrbac.render(), "run: python -m provisioning.hostrbac"


def test_the_namespace_of_host_name_claims_is_the_installations_with_the_syncers_admission_policy():
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render()}
    assert objects[("Namespace", CLAIMS_NAMESPACE)]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    binding = next(o for (kind, _), o in objects.items()
                   if kind == "RoleBinding" and o["metadata"].get("namespace") == CLAIMS_NAMESPACE)
    role = next(name for kind, name in objects if kind == "ClusterRole" and name.endswith("-namespace"))
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
    policy = next(o for (kind, name), o in objects.items()
                  if kind == "ValidatingAdmissionPolicy" and name.endswith("-host-names"))
    assert policy["spec"] == next(m for m in manifests.claims_setup() if m["kind"] == "ValidatingAdmissionPolicy")["spec"]
    assert ("ValidatingAdmissionPolicyBinding", policy["metadata"]["name"]) in objects
    without = {(o["kind"], o["metadata"]["name"]) for o in render("--set", "hostCluster.ingressHostNames=false")}
    assert ("Namespace", CLAIMS_NAMESPACE) not in without
    assert ("ValidatingAdmissionPolicy", policy["metadata"]["name"]) not in without


@pytest.mark.kube
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_api_server_accepts_every_object_without_a_pod_security_warning(host_cluster, values):
    namespace = new_namespace(client.CoreV1Api(host_cluster.api_client()), "chart", {
        "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"})
    objects = render("--namespace", namespace, *values)
    for obj in objects:  # as `helm install -n` places them
        if obj["kind"] not in CLUSTER_KINDS:
            obj["metadata"].setdefault("namespace", namespace)
    apply = [str(bin_dir() / "kubectl"), "--kubeconfig", str(host_cluster.admin_kubeconfig), "apply", "-f", "-"]
    # A dry run makes no namespace, and the objects in the chart's own would not be found.
    claims = [o for o in objects if o["kind"] == "Namespace"]
    subprocess.run(apply, input=yaml.safe_dump_all(claims), capture_output=True, text=True, timeout=60, check=True)
    # Server-side: objects shared with other installations and provisioning (the claims
    # namespace's) may exist already, made by another field manager.
    done = subprocess.run([*apply, "--server-side", "--force-conflicts", "--dry-run=server"],
                          input=yaml.safe_dump_all(objects), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects)


BAD_VALUES = {
    "web.replicas=-1": "at '/web/replicas': minimum: got -1, want 0",
    "web.service.type=Ingress": "at '/web/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'",
    "gateway.url=http://vcportal.example.com": "at '/gateway/url'",
    "web.resources.limits.memory=lots": "at '/web/resources/limits/memory'",
    "replicas=3": "additional properties 'replicas' not allowed",
    "database.bundled.enabled=false": "database: set database.url, database.existingSecret.name, or database.bundled.enabled=true",
    "ingress.enabled=true": "ingress.host: an Ingress needs the host name it serves",
    "web.service.httpNodePort=30080": "web.service.httpNodePort/gatewayNodePort: node ports need web.service.type=NodePort",
    "hostCluster.access=hostport": "at '/hostCluster/access': value must be one of",
    "hostCluster.access=nodeport": "hostCluster.accessAddress: access nodeport needs it",
}


@pytest.mark.parametrize(("value", "message"), BAD_VALUES.items(), ids=BAD_VALUES.keys())
def test_a_bad_value_fails_naming_it(value, message):
    done = helm("template", "t", str(CHART), *local_images(), "--set", value, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_bundled_stores_need_their_image_tags():
    done = helm("template", "t", str(CHART), check=False)
    assert "database.bundled.image.tag: name the PostgreSQL image's tag" in done.stderr


def test_helm_lint_is_clean():
    done = helm("lint", "--strict", str(CHART), *local_images())
    assert "0 chart(s) failed" in done.stdout and "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


@pytest.mark.kube
def test_an_install_with_a_bad_value_creates_nothing(host_cluster):
    done = helm("install", "bad", str(CHART), "--namespace", "chart-bad-value", "--create-namespace", *local_images(),
                "--set", "worker.concurrency=0", kubeconfig=host_cluster.admin_kubeconfig, check=False)
    assert done.returncode != 0 and "at '/worker/concurrency': minimum: got 0, want 1" in done.stderr
    namespaces = client.CoreV1Api(host_cluster.api_client()).list_namespace().items
    assert "chart-bad-value" not in {n.metadata.name for n in namespaces}


def test_metrics_objects_scrape_web_gateway_and_worker_with_the_kept_token():
    objects = render("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.grafanaDashboard.enabled=true")
    by_kind = {o["kind"]: o for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor", "ConfigMap")}
    web, gateway = by_kind["ServiceMonitor"]["spec"]["endpoints"]
    token = {"name": "t-vcportal", "key": "metrics-token"}
    assert (web["port"], web["path"], web["bearerTokenSecret"]) == ("http", "/metrics", token)
    assert (gateway["port"], gateway["scheme"], gateway["bearerTokenSecret"]) == ("gateway", "https", token)
    assert gateway["tlsConfig"]["ca"]["secret"] == {"name": "t-vcportal-gateway-tls", "key": "ca.crt"}
    assert by_kind["PodMonitor"]["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics",
                                                                      "interval": "30s"}]
    assert "metrics-token" in next(o for o in objects if o["kind"] == "Secret")["stringData"]
    opened = next(o for o in objects if o["metadata"]["name"] == "t-vcportal-worker-metrics")
    assert opened["spec"]["ingress"] == [{"ports": [{"port": 9540, "protocol": "TCP"}]}]
    dashboard = json.loads(by_kind["ConfigMap"]["data"]["vcportal.json"])
    assert dashboard["uid"] == "vcportal" and by_kind["ConfigMap"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    # Each web container adds up its own processes' counts, in a directory of its own.
    web_pod = pod_specs(objects)["Deployment/t-vcportal-web"]
    dirs = [next(e["value"] for e in c["env"] if e["name"] == "PROMETHEUS_MULTIPROC_DIR") for c in web_pod["containers"]]
    assert len(set(dirs)) == 2
    assert not {"ServiceMonitor", "PodMonitor", "ConfigMap"} & {o["kind"] for o in render()}


def test_the_dashboard_charts_every_metric_the_code_exports_and_no_other():
    """Every series a panel queries is one portal.metrics or syncer.metrics defines (or
    the web's per-scrape gauges), and every one they define has a panel."""
    from prometheus_client.metrics import MetricWrapperBase

    import portal.metrics
    import syncer.metrics

    defined = {value._name for module in (portal.metrics, syncer.metrics) for value in vars(module).values()
               if isinstance(value, MetricWrapperBase)} | {"vcportal_vclusters", "vcportal_queue_depth"}
    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    queried = {re.sub(r"_(total|bucket|count|sum)$", "", name) for panel in dashboard["panels"]
               for target in panel["targets"] for name in re.findall(r"\bvcportal_\w+", target["expr"])}
    assert queried == defined, (queried - defined, defined - queried)
