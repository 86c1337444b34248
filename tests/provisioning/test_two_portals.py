"""Two portals on one host cluster (docs/installation.md): each has its own database and
so its own installation name and token; both number their vclusters from 1 with the
same team and names, and each creates, repairs and deletes only its own.

On the kwok host with the local runtime: control planes and syncers are real processes,
the host's admission, RBAC and quota are real; what this does not show is a container
running on a node (no portal behaviour here depends on one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from kubernetes import client

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from provisioning import installation, manifests, pipeline
from provisioning.hostclusters import services
from provisioning.hostkube import HostKube
from provisioning.models import HostCluster
from tests.portal.test_migrations import migrate
from vclusters import lifecycle
from vclusters.models import VCluster

ROOT = Path(__file__).resolve().parents[2]
# The portals' Celery messages (a phase change requests its work) go to a Redis database
# no test worker reads, emptied after each command.
OTHER_REDIS_DB = 9


def _redis_url(db: int) -> str:
    parts = urlsplit(django_settings.REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{db}"))


class Portal:
    """One portal: a process per command, with its own SQLite database and state directory."""

    def __init__(self, name: str, tmp: Path, kubeconfig: Path):
        self.name, self.kubeconfig = name, kubeconfig
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / name}.sqlite3", "VCPORTAL_VAR_DIR": str(tmp / name),
                    "REDIS_URL": _redis_url(OTHER_REDIS_DB)}
        self.env.pop("VCPORTAL_INSTALLATION", None)

    def run(self, command: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "tests.provisioning.portal_process", command, str(self.kubeconfig)],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        redis.from_url(self.env["REDIS_URL"]).flushdb()
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])


def _objects_of(kube: HostKube, name: str) -> dict[str, str]:
    """Every host object labelled as this installation's: "Kind ns/name" -> uid."""
    return kube.labelled(f"{manifests.INSTALLATION_LABEL}={name}")


@pytest.fixture
def portals(host_cluster, tmp_path):
    started = []

    def start(name: str) -> Portal:
        portal = Portal(name, tmp_path, host_cluster.admin_kubeconfig)
        started.append(portal)
        return portal

    yield start
    for portal in started:  # whatever a failed test left running
        subprocess.run([sys.executable, "-m", "tests.provisioning.portal_process", "delete", str(portal.kubeconfig)],
                       cwd=ROOT, env=portal.env, capture_output=True, timeout=600)
    redis.from_url(_redis_url(OTHER_REDIS_DB)).flushdb()


def _phases(report: dict) -> dict[int, str]:
    return {vc["id"]: vc["phase"] for vc in report["vclusters"]}


def test_two_portals_with_the_same_ids_team_and_names_each_manage_only_their_own(portals, host_cluster):
    kube = HostKube(host_cluster.admin_kubeconfig.read_text())
    one, two = portals("one"), portals("two")
    with ThreadPoolExecutor(2) as both:  # at the same time, as two installations would
        first, second = both.map(lambda portal: portal.run("setup"), (one, two))
    assert _phases(first) == _phases(second) == {1: "Ready", 2: "Ready"}, (first, second)
    assert first["installation"]["name"] != second["installation"]["name"]
    namespaces = [vc["namespace"] for vc in first["vclusters"] + second["vclusters"]]
    assert len(set(namespaces)) == 4, namespaces
    assert namespaces[0] == f"vc-{first['installation']['token']}-1-demo-web"

    theirs = _objects_of(kube, second["installation"]["name"])
    assert f"ClusterRoleBinding {manifests.SYNCER}-{namespaces[2]}" in theirs
    ours_before = _objects_of(kube, first["installation"]["name"])
    # Drift on the first portal's side only: repair puts back its own policy.
    kube.delete("networking.k8s.io/v1", "NetworkPolicy", "vcluster-egress", namespaces[0])
    repairs = one.run("repair")["repairs"]
    assert repairs["1"] == [f"NetworkPolicy {namespaces[0]}/vcluster-egress"], repairs
    assert repairs["2"] == []
    assert set(_objects_of(kube, first["installation"]["name"])) == set(ours_before)
    assert _objects_of(kube, second["installation"]["name"]) == theirs

    gone = one.run("delete")
    assert _phases(gone) == {1: "Deleted", 2: "Deleted"}, gone
    for vcluster in gone["vclusters"]:
        assert vcluster["receipt"]["steps"][-1]["step"] == "Verify nothing remains"
        assert vcluster["receipt"]["steps"][-1]["done"].startswith("no object labelled"), vcluster["receipt"]
    # Only the record that the first portal manages this host stays of it.
    assert set(_objects_of(kube, first["installation"]["name"])) == {
        f"Namespace {installation.record_name(first['installation']['name'])}"}
    assert _objects_of(kube, second["installation"]["name"]) == theirs
    assert _phases(two.run("status")) == {1: "Ready", 2: "Ready"}

    assert _phases(two.run("delete")) == {1: "Deleted", 2: "Deleted"}
    assert set(_objects_of(kube, second["installation"]["name"])) == {
        f"Namespace {installation.record_name(second['installation']['name'])}"}


@pytest.mark.django_db
def test_a_portal_claiming_another_portals_name_is_refused_at_registration(portals, host_cluster, settings):
    first = portals("one").run("register")
    settings.VCPORTAL_INSTALLATION = first["installation"]["name"]
    core = client.CoreV1Api(host_cluster.api_client())
    namespaces_before = {n.metadata.name for n in core.list_namespace().items}

    with pytest.raises(services.ValidationError) as refused:
        services.register_host_cluster(SYSTEM, name="shared", kubeconfig=host_cluster.admin_kubeconfig.read_text(),
                                       runtime="local")
    message = refused.value.message_dict["kubeconfig"][0]
    assert message.startswith(f"host cluster shared is already managed by another portal named "
                              f"'{first['installation']['name']}' (recorded in namespace "
                              f"{installation.record_name(first['installation']['name'])}: "
                              f"identity {first['installation']['uid']}, since "), message
    assert not HostCluster.objects.exists()
    assert not AuditEvent.objects.exists()
    assert {n.metadata.name for n in core.list_namespace().items} == namespaces_before


BEFORE_THE_IDENTITY = [("provisioning", "0007_host_cluster_in_cluster")]


@pytest.mark.django_db(transaction=True)
def test_an_upgraded_portal_keeps_the_name_its_host_objects_carry_and_deletes_them(host_cluster, settings, tmp_path):
    """Before 0008 every portal labelled its objects with VCPORTAL_INSTALLATION, by
    default `vcportal`: its database keeps that name, so teardown still finds them."""
    settings.VAR_DIR = tmp_path
    kube = HostKube(host_cluster.admin_kubeconfig.read_text())
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = migrate(BEFORE_THE_IDENTITY)
    try:
        team = old.get_model("accounts", "Team").objects.create(name="Alpha", slug="alpha")
        vcluster = old.get_model("vclusters", "VCluster").objects.create(
            team=team, name="old", kubernetes_version="v1.37.2", cpu_millicores=1000, memory_bytes=2**30,
            storage_bytes=2**30, pods=10, phase="Ready")
        host = old.get_model("provisioning", "HostCluster").objects.create(
            name="test-host", kubeconfig=host_cluster.admin_kubeconfig.read_text(), runtime="local")
        ns = f"vc-{vcluster.pk}-alpha-old"  # as names were before the token
        old.get_model("provisioning", "Placement").objects.create(
            vcluster=vcluster, host_cluster=host, host_namespace=ns, runtime="local")
    finally:
        migrate(latest)
    # What the portal had written, labelled with the old default name.
    labels = manifests.labels(vcluster.pk, "alpha", "vcportal")
    for manifest in [manifests.namespace(ns, labels, "baseline"), *manifests.network_policies(ns, labels),
                     *manifests.syncer_identity(ns, labels)]:
        kube.apply(manifest)
    written = _objects_of(kube, "vcportal")
    assert f"ClusterRoleBinding {manifests.node_reader_binding_name(ns)}" in written

    assert installation.current().name == "vcportal"
    vc = VCluster.objects.get(pk=vcluster.pk)
    lifecycle.transition(vc, lifecycle.Event.DELETE)
    pipeline.teardown(vc.pk)
    vc.refresh_from_db()
    assert vc.phase == "Deleted", vc.message
    assert set(_objects_of(kube, "vcportal")) == {f"Namespace {installation.record_name('vcportal')}"}


@pytest.mark.django_db
def test_a_portal_is_not_renamed_by_a_later_setting(settings):
    settings.VCPORTAL_INSTALLATION = ""
    name = installation.current().name
    assert name.startswith("vcp-") and name == installation.current().name
    settings.VCPORTAL_INSTALLATION = "staging"
    with pytest.raises(ImproperlyConfigured, match=f"VCPORTAL_INSTALLATION is 'staging', but this portal's "
                                                   f"database names it '{name}'"):
        installation.current()
