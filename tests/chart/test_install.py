"""charts/vcportal installed with `helm` into the embedded host cluster, the way `make
install-demo` installs it (localkube.demo), whose real node runs every pod from the local registry's images: the bundled PostgreSQL and Redis, the
migration Job, web (with the gateway), worker and beat. Reached as a user would, through
the portal's Service on node ports. In order: install; the portal's ServiceAccount tries
to reach beyond its namespaces and fails; a vcluster becomes Ready with its control plane
in a namespace of this same cluster and a personal kubeconfig works through the in-cluster
gateway; web and worker pods killed mid-create; upgrade (new image tag and a changed value)
with a probe every 0.5 s; uninstall;
and a reinstall that finds its data and deletes the vcluster."""

from __future__ import annotations

import base64
import json
import platform
import random
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from controlplane.images import reference
from localkube.binaries import bin_dir
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from tests.kube.helpers import eventually

from tests.images.test_portal_images import locked

from localkube import demo

from .helpers import helm

pytestmark = [pytest.mark.kube, pytest.mark.realnode]

RELEASE = "t"
NAME = "t-vcportal"
# Small on 2 cores, but two web pods: a rolling upgrade keeps one serving.
SMALL = ["--set", "web.service.type=NodePort", "--set", "web.workers=1", "--set", "web.replicas=2",
         "--set", "worker.concurrency=2"]
ACCOUNT = "t-vcportal"


@dataclass
class Portal:
    cluster: object
    namespace: str
    url: str = ""
    token: str = ""
    node_ports: tuple[int, ...] = ()
    vcluster: int = 0
    personal_kubeconfig: Path | None = None
    api_host_namespace: str = ""

    @property
    def kubeconfig(self):
        return self.cluster.admin_kubeconfig

    def kubectl(self, *args: str) -> str:
        done = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace,
                               *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def install(self, *values: str) -> None:
        """`make install-demo`'s install (or upgrade) with this test's release, namespace and
        free node ports, and `values`."""
        self.node_ports = self.node_ports or tuple(_free_node_ports(self.cluster, 2))
        installed = demo.install(self.cluster, release=RELEASE, namespace=self.namespace, node_ports=self.node_ports,
                                 values=(*SMALL, *values))
        self.url, self.token = installed.url, installed.token

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/api/v1/{path}", timeout=10, **kwargs,
                                headers={"Authorization": f"Bearer {self.token}"})

    def as_portal(self, *args: str) -> subprocess.CompletedProcess:
        """kubectl as the portal's ServiceAccount (impersonated: authorized and admitted as it)."""
        return subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.kubeconfig),
                               "--as", f"system:serviceaccount:{self.namespace}:{ACCOUNT}", *args],
                              capture_output=True, text=True, timeout=60)

    def jobs(self) -> dict[str, client.V1JobStatus]:
        batch = client.BatchV1Api(self.cluster.api_client())
        return {j.metadata.name: j.status for j in batch.list_namespaced_job(self.namespace).items}


@pytest.fixture(scope="module")
def portal(real_host_cluster):
    namespace = f"vcportal-{uuid.uuid4().hex[:6]}"
    # Every pod of the chart runs under the restricted Pod Security standard.
    client.CoreV1Api(real_host_cluster.api_client()).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace, labels={"pod-security.kubernetes.io/enforce": "restricted",
                                "pod-security.kubernetes.io/enforce-version": "latest"})))
    return Portal(real_host_cluster, namespace)


def test_install_migrates_once_and_the_admin_works_through_the_service(portal):
    portal.install()
    found = json.loads(portal.kubectl("exec", f"deploy/{NAME}-web", "-c", "web", "--", "python3", "-c", IN_THE_IMAGE))
    assert found == {"python": platform.python_version(), "distributions": sorted(locked()), "uid": 65532,
                     "shell": False}

    assert {name: (s.succeeded, s.failed) for name, s in portal.jobs().items()} == {f"{NAME}-migrate-1": (1, None)}
    created = portal.api("POST", "teams/", json={"name": "Platform"})
    assert created.status_code == 201, created.text
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]

    # /metrics through the Service (docs/metrics.md): only with the token the chart keeps.
    secret = client.CoreV1Api(portal.cluster.api_client()).read_namespaced_secret(NAME, portal.namespace)
    token = base64.b64decode(secret.data["metrics-token"]).decode()
    assert requests.get(f"{portal.url}/metrics", timeout=10).status_code == 401
    scraped = requests.get(f"{portal.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert scraped.status_code == 200 and 'vcportal_vclusters{phase="Ready"} 0.0' in scraped.text


def test_the_portals_service_account_reaches_nothing_beyond_its_namespaces(portal):
    assert portal.as_portal("auth", "can-i", "get", "secrets", "-n", "kube-system").stdout.strip() == "no"
    assert portal.as_portal("auth", "can-i", "list", "secrets", "--all-namespaces").stdout.strip() == "no"
    assert portal.as_portal("auth", "can-i", "create", "namespaces").stdout.strip() == "yes"
    role = f"t-vcportal-{portal.namespace}-namespace"
    account = f"{portal.namespace}:{ACCOUNT}"
    core = client.CoreV1Api(portal.cluster.api_client())
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=victim)))

    escapes = {  # each tries a way past RBAC's reach; the admission policy refuses it
        "its namespace role in kube-system": ("create", "rolebinding", "escape", "-n", "kube-system",
                                              f"--clusterrole={role}", f"--serviceaccount={account}"),
        "its namespace role cluster-wide": ("create", "clusterrolebinding", f"escape-{portal.namespace}",
                                            f"--clusterrole={role}", f"--serviceaccount={account}"),
        "a cluster role of its own": ("create", "clusterrole", f"escape-{portal.namespace}", "--verb=get",
                                      "--resource=nodes"),
        "deleting a namespace not its own": ("delete", "namespace", victim, "--wait=false"),
        "labelling a namespace as its own": ("label", "namespace", victim,
                                             f"vcportal.io/installation={portal.namespace}-{RELEASE}"),
    }
    for what, args in escapes.items():
        done = portal.as_portal(*args)
        assert done.returncode != 0 and "ValidatingAdmissionPolicy" in done.stderr, (what, done.stdout, done.stderr)
    assert core.read_namespace(victim).metadata.deletion_timestamp is None


def test_a_vcluster_runs_in_the_same_cluster_and_a_personal_kubeconfig_reaches_it(portal, tmp_path):
    assert portal.api("POST", "teams/platform/members/", json={"username": "admin", "role": "member"}).status_code == 201
    created = portal.api("POST", "vclusters/", json={"team": "platform", "name": "first"})
    assert created.status_code == 201, created.text
    vcluster = created.json()["id"]
    ready = eventually(lambda: (v := portal.api("GET", f"vclusters/{vcluster}/").json())["phase"] in ("Ready", "Failed")
                       and v, timeout=300, interval=2, what="the vcluster to be Ready")
    assert ready["phase"] == "Ready", (ready["message"], [s for s in ready["steps"] if s["status"] == "Failed"])
    host_namespace = portal.api("GET", f"vclusters/{vcluster}/").json()["placement"]["host_namespace"]
    control_plane = client.CoreV1Api(portal.cluster.api_client()).list_namespaced_pod(host_namespace).items
    assert [p.spec.node_name for p in control_plane if p.metadata.name == "vcluster-0"] == ["realnode-0"]
    claims = client.RbacAuthorizationV1Api(portal.cluster.api_client()).list_namespaced_role_binding(
        CLAIMS_NAMESPACE, label_selector=f"vcportal.io/vcluster-id={vcluster}").items
    assert [b.subjects[0].namespace for b in claims] == [host_namespace], "its syncer may claim Ingress host names"
    worker_metrics = portal.kubectl("exec", f"deploy/{NAME}-worker", "--", "python3", "-c",
                                    "import urllib.request; print(urllib.request.urlopen("
                                    "'http://127.0.0.1:9540/metrics').read().decode())")
    assert "vcportal_create_to_ready_seconds_count 1.0" in worker_metrics

    kubeconfig = tmp_path / "personal.kubeconfig"
    kubeconfig.write_text(portal.api("GET", f"vclusters/{vcluster}/kubeconfig/").text)
    tenant = lambda *args: subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig), *args],  # noqa: E731
                                          capture_output=True, text=True, timeout=120)
    assert "kube-system" in tenant("get", "ns").stdout
    run = tenant("run", "hello", f"--image={reference('busybox')}", "--restart=Never", "--",
                 "sh", "-c", "echo hello from the tenant; sleep 3600")
    assert run.returncode == 0, run.stderr
    assert tenant("wait", "--for=condition=Ready", "pod/hello", "--timeout=180s").returncode == 0
    assert tenant("logs", "hello").stdout == "hello from the tenant\n"
    assert tenant("exec", "hello", "--", "cat", "/etc/hostname").stdout.strip() == "hello"
    portal.vcluster, portal.personal_kubeconfig = vcluster, kubeconfig


def test_web_and_worker_pods_killed_mid_create_lose_nothing_and_double_nothing(portal):
    created = portal.api("POST", "vclusters/", json={"team": "platform", "name": "second"})
    assert created.status_code == 201, created.text
    second = created.json()["id"]
    eventually(lambda: portal.api("GET", f"vclusters/{second}/").json()["phase"] == "Provisioning", timeout=60,
               what="provisioning to start")
    portal.kubectl("delete", "pod", "-l", "app.kubernetes.io/component in (web,worker)", "--grace-period=0",
                   "--force", "--wait=false")

    phase = _eventually_answered(portal, f"vclusters/{second}/", lambda v: v["phase"] in ("Ready", "Failed"))
    assert phase["phase"] == "Ready", phase
    events = portal.api("GET", "audit-events/").json()["results"]
    assert sum(e["action"] == "vcluster.create" and e["target_id"] == str(second) for e in events) == 1
    namespaces = client.CoreV1Api(portal.cluster.api_client()).list_namespace(
        label_selector=f"vcportal.io/vcluster-id={second}").items
    assert [n.metadata.name for n in namespaces] == [phase["placement"]["host_namespace"]]
    assert portal.api("DELETE", f"vclusters/{second}/").status_code == 202
    gone = _eventually_answered(portal, f"vclusters/{second}/", lambda v: v["phase"] in ("Deleted", "DeleteFailed"))
    assert gone["phase"] == "Deleted", gone["message"]


def _eventually_answered(portal: Portal, path: str, done, timeout: float = 300) -> dict:
    """GET `path` until `done` holds, through web pods that may be restarting meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = portal.api("GET", path)
            if answer.status_code == 200 and done(body := answer.json()):
                return body
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{path} not done after {timeout} s"
        time.sleep(2)


def test_an_upgrade_keeps_the_data_runs_its_migrations_once_and_serves_throughout(portal):
    new_tag = _retag("vcportal", f"{reference('vcportal').rsplit(':', 1)[1]}-next")
    vcluster_probe = _through_gateway(portal)
    failures, probes = _probe_during(
        lambda: portal.install("--set", f"image.tag={new_tag}", "--set", "config.logLevel=DEBUG"),
        [lambda: portal.api("GET", "teams/"), vcluster_probe])
    print(f"upgrade: {len(failures)} of {probes} probes (the API, and the vcluster through the gateway) failed: "
          f"{failures[:5]}")

    assert failures == []
    assert {name: (s.succeeded, s.failed) for name, s in portal.jobs().items()} == {f"{NAME}-migrate-2": (1, None)}
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]
    assert [e["action"] for e in portal.api("GET", "audit-events/").json()["results"]].count("team.create") == 1
    pods = client.CoreV1Api(portal.cluster.api_client()).list_namespaced_pod(
        portal.namespace, label_selector="app.kubernetes.io/component=web").items
    assert {c.image.rsplit(":", 1)[1] for p in pods if not p.metadata.deletion_timestamp
            for c in p.spec.containers} == {new_tag}


def test_uninstall_keeps_the_data_and_its_keys_so_a_reinstall_finds_them(portal):
    portal.api_host_namespace = portal.api("GET", f"vclusters/{portal.vcluster}/").json()["placement"]["host_namespace"]
    helm("uninstall", RELEASE, "-n", portal.namespace, "--wait", kubeconfig=portal.kubeconfig)

    core = client.CoreV1Api(portal.cluster.api_client())
    assert {s.metadata.name for s in core.list_namespaced_secret(portal.namespace).items} == {
        NAME, f"{NAME}-gateway-tls"}
    assert {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(portal.namespace).items} == {
        f"data-{NAME}-postgresql-0", f"data-{NAME}-redis-0"}
    assert not core.list_namespaced_service(portal.namespace).items
    host_namespace = portal.api_host_namespace
    assert core.read_namespace(host_namespace).status.phase == "Active"  # tenants' clusters keep running

    portal.install()
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]
    assert portal.api("DELETE", f"vclusters/{portal.vcluster}/").status_code == 202
    deadline = time.monotonic() + 240
    while (gone := portal.api("GET", f"vclusters/{portal.vcluster}/").json())["phase"] not in ("Deleted", "DeleteFailed"):
        assert time.monotonic() < deadline, (gone, portal.kubectl("logs", f"deploy/{NAME}-worker", "--tail", "40"))
        time.sleep(2)
    assert gone["phase"] == "Deleted", (gone["message"], [s for s in gone["steps"] if s["status"] == "Failed"], gone["events"][-3:])
    assert host_namespace not in {n.metadata.name for n in core.list_namespace().items}


# What the portal image holds: this Python, the lock's distributions, no shell (tests/images).
IN_THE_IMAGE = """
import json, os, platform
from importlib import metadata
from packaging.utils import canonicalize_name
print(json.dumps({"python": platform.python_version(), "uid": os.getuid(), "shell": os.path.exists("/bin/sh"),
                  "distributions": sorted(f"{canonicalize_name(d.name)}=={d.version}" for d in metadata.distributions())}))
"""


def _retag(name: str, new_tag: str) -> str:
    """The same image under a second tag: an upgrade to a new image, built once."""
    source = reference(name)
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{source}", f"docker://{source.rsplit(':', 1)[0]}:{new_tag}"], check=True, timeout=120)
    return new_tag


def _free_node_ports(cluster, count: int) -> list[int]:
    """Node ports no Service of the cluster holds."""
    services = client.CoreV1Api(cluster.api_client()).list_service_for_all_namespaces().items
    taken = {p.node_port for s in services for p in s.spec.ports or [] if p.node_port}
    return random.sample(sorted(set(range(30000, 32768)) - taken), count)


def _through_gateway(portal: Portal):
    """A request to the vcluster through the gateway, as the personal kubeconfig makes it."""
    config = yaml.safe_load(portal.personal_kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ca = portal.personal_kubeconfig.with_suffix(".ca")
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return lambda: requests.get(f"{cluster['server']}/api/v1/namespaces", verify=str(ca), timeout=10,
                                headers={"Authorization": f"Bearer {user['token']}"})


def _probe_during(action, targets) -> tuple[list[str], int]:
    """Run `action` while each of `targets` (a request) is probed every 0.5 s; the failed
    probes and the count."""
    failures: list[str] = []
    probes = 0
    done = threading.Event()

    def probe():
        nonlocal probes
        while not done.is_set():
            for target in targets:
                probes += 1
                try:
                    answer = target()
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:80]}")
                except requests.RequestException as exc:
                    failures.append(type(exc).__name__)
            time.sleep(0.5)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        action()
        time.sleep(5)  # and a moment after: the old pods' last seconds
    finally:
        done.set()
        thread.join()
    return failures, probes
