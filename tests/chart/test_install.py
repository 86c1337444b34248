"""charts/vcportal installed with `helm` into the embedded host cluster, whose real node
runs every pod from the local registry's images: the bundled PostgreSQL and Redis, the
migration Job, web (with the gateway), worker and beat. Reached as a user would, through
the portal's Service on a node port. In order: install, upgrade (new image tag and a
changed value) with a probe every 0.5 s, uninstall, and a reinstall that finds its data."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests
from kubernetes import client

from controlplane.images import reference
from localkube.binaries import bin_dir
from tests.kube.helpers import eventually

from .helpers import CHART, helm, local_images

pytestmark = [pytest.mark.kube, pytest.mark.realnode]

RELEASE = "t"
NAME = "t-vcportal"
# Small on 2 cores, but two web pods: a rolling upgrade keeps one serving.
SMALL = ["--set", "web.service.type=NodePort", "--set", "web.workers=1", "--set", "web.replicas=2",
         "--set", "worker.concurrency=2"]


@dataclass
class Portal:
    cluster: object
    namespace: str
    url: str = ""
    token: str = ""
    values: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self):
        return self.cluster.admin_kubeconfig

    def kubectl(self, *args: str) -> str:
        done = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace,
                               *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def install(self, *values: str) -> None:
        self.values = [*local_images(), *SMALL, *values]
        helm("install", RELEASE, str(CHART), "-n", self.namespace, *self.values, "--wait", "--wait-for-jobs",
             "--timeout", "10m", kubeconfig=self.kubeconfig, timeout=660)
        self.locate()

    def locate(self) -> None:
        service = client.CoreV1Api(self.cluster.api_client()).read_namespaced_service(NAME, self.namespace)
        port = next(p.node_port for p in service.spec.ports if p.name == "http")
        self.url = f"http://{self.cluster.real_node().link.node_ip}:{port}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        # The Service's name is an allowed host; the node's address is not (no `url` set).
        return requests.request(method, f"{self.url}/api/v1/{path}", timeout=10, **kwargs,
                                headers={"Host": NAME, "Authorization": f"Bearer {self.token}"})

    def jobs(self) -> dict[str, client.V1JobStatus]:
        batch = client.BatchV1Api(self.cluster.api_client())
        return {j.metadata.name: j.status for j in batch.list_namespaced_job(self.namespace).items}


@pytest.fixture(scope="module")
def portal(real_host_cluster):
    namespace = f"vcportal-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(real_host_cluster.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    return Portal(real_host_cluster, namespace)


def test_install_migrates_once_and_the_admin_works_through_the_service(portal):
    portal.install()

    assert {name: (s.succeeded, s.failed) for name, s in portal.jobs().items()} == {f"{NAME}-migrate-1": (1, None)}
    portal.token = portal.kubectl("exec", f"deploy/{NAME}-web", "-c", "web", "--",
                                  "python3", "/app/manage.py", "create_api_token", "admin").strip()
    created = portal.api("POST", "teams/", json={"name": "Platform"})
    assert created.status_code == 201, created.text
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]


def test_an_upgrade_keeps_the_data_runs_its_migrations_once_and_serves_throughout(portal):
    new_tag = _retag("vcportal", f"{reference('vcportal').rsplit(':', 1)[1]}-next")
    failures, probes = _probe_during(lambda: helm(
        "upgrade", RELEASE, str(CHART), "-n", portal.namespace, *portal.values, "--set", f"image.tag={new_tag}",
        "--set", "config.logLevel=DEBUG", "--wait", "--wait-for-jobs", "--timeout", "10m",
        kubeconfig=portal.kubeconfig, timeout=660), portal)
    print(f"upgrade: {len(failures)} of {probes} probes failed: {failures[:5]}")

    assert failures == []
    assert {name: (s.succeeded, s.failed) for name, s in portal.jobs().items()} == {f"{NAME}-migrate-2": (1, None)}
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]
    assert [e["action"] for e in portal.api("GET", "audit-events/").json()["results"]].count("team.create") == 1
    pods = client.CoreV1Api(portal.cluster.api_client()).list_namespaced_pod(
        portal.namespace, label_selector="app.kubernetes.io/component=web").items
    assert {c.image.rsplit(":", 1)[1] for p in pods if not p.metadata.deletion_timestamp
            for c in p.spec.containers} == {new_tag}


def test_uninstall_keeps_the_data_and_its_keys_so_a_reinstall_finds_them(portal):
    helm("uninstall", RELEASE, "-n", portal.namespace, "--wait", kubeconfig=portal.kubeconfig)

    core = client.CoreV1Api(portal.cluster.api_client())
    eventually(lambda: not core.list_namespaced_pod(portal.namespace).items, timeout=120, what="every pod to stop")
    assert {s.metadata.name for s in core.list_namespaced_secret(portal.namespace).items} == {
        NAME, f"{NAME}-gateway-tls"}
    assert {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(portal.namespace).items} == {
        f"data-{NAME}-postgresql-0", f"data-{NAME}-redis-0"}
    assert not core.list_namespaced_service(portal.namespace).items

    portal.install()
    assert [t["slug"] for t in portal.api("GET", "teams/").json()["results"]] == ["platform"]


def _retag(name: str, new_tag: str) -> str:
    """The same image under a second tag: an upgrade to a new image, built once."""
    source = reference(name)
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{source}", f"docker://{source.rsplit(':', 1)[0]}:{new_tag}"], check=True, timeout=120)
    return new_tag


def _probe_during(action, portal: Portal) -> tuple[list[str], int]:
    """Run `action` while a probe lists teams every 0.5 s; the failed probes and the count."""
    failures: list[str] = []
    probes = 0
    done = threading.Event()

    def probe():
        nonlocal probes
        while not done.is_set():
            probes += 1
            try:
                answer = portal.api("GET", "teams/")
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
