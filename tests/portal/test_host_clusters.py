"""Host clusters, registered and changed by platform admins in the API and the portal:
the kubeconfig is checked by connecting, stored encrypted, never returned, logged or
audited; bad input answers 400 and writes nothing. Who may call what is in
test_authorization_matrix.py. Tests that register a real cluster use the session's
`host_cluster` fixture (marker `kube`)."""

import pytest
import yaml
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from provisioning import hosts
from provisioning.models import HostCluster, Placement
from tests.portal.conftest import UNREACHABLE_KUBECONFIG, make_host, make_team, make_vcluster
from vclusters.models import Phase

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def staff(api):
    return api("staff")


@pytest.fixture
def staff_page(world):
    client = Client()
    client.force_login(world.staff)
    return client


def place(vcluster, host, namespace=None):
    return Placement.objects.create(vcluster=vcluster, host_cluster=host,
                                    host_namespace=namespace or f"vc-{vcluster.team.slug}-{vcluster.name}")


def counts():
    return HostCluster.objects.count(), AuditEvent.objects.count()


def kubeconfig(**user) -> str:
    """The unreachable kubeconfig with other user credentials."""
    doc = yaml.safe_load(UNREACHABLE_KUBECONFIG)
    doc["users"][0]["user"] = user
    return yaml.safe_dump(doc)


# Reading ----------------------------------------------------------------------
def test_it_lists_host_clusters_with_their_live_load_and_never_the_kubeconfig(staff, world):
    east, west = make_host("east", capacity_notes="8 nodes"), make_host("west", enabled=False)
    west.teams.set([world.alpha, world.beta])
    place(make_vcluster(world.alpha, "ready", phase=Phase.READY), east)
    place(make_vcluster(world.alpha, "failed", phase=Phase.FAILED), east)
    place(make_vcluster(world.alpha, "gone", phase=Phase.DELETED), east)  # not live: no load
    body = staff.get("/api/v1/host-clusters/").json()
    assert body["count"] == 2
    first, second = body["results"]
    assert set(first) == {"name", "enabled", "capacity_notes", "teams", "tenant_policy", "load", "created_at"}
    assert (first["name"], first["enabled"], first["capacity_notes"], first["teams"], first["load"]) == (
        "east", True, "8 nodes", [], 2)
    assert (second["name"], second["enabled"], sorted(second["teams"]), second["load"]) == (
        "west", False, ["alpha", "beta"], 0)
    detail = staff.get("/api/v1/host-clusters/west/")
    assert detail.json() == second
    assert "not-a-real-token" not in detail.content.decode()


def test_the_list_costs_the_same_queries_for_many_host_clusters(staff, world):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert staff.get("/api/v1/host-clusters/").status_code == 200
        return len(captured)

    def add(start, stop):
        for i in range(start, stop):
            host = make_host(f"h-{i}")
            host.teams.set([make_team(f"t-{i}")])
            place(make_vcluster(world.alpha, f"v-{i}", phase=Phase.READY), host)

    add(0, 2)
    staff.get("/api/v1/host-clusters/")  # the token's last-used stamp is written on first use only
    few = queries()
    add(2, 12)
    assert queries() == few


# Registering: bad input -------------------------------------------------------
UNSAFE = [
    kubeconfig(exec={"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/true"}),
    kubeconfig(**{"auth-provider": {"name": "gcp", "config": {"cmd-path": "/bin/true"}}}),
    kubeconfig(**{"client-certificate": "/etc/ssl/cert.pem", "client-key": "/etc/ssl/key.pem"}),
    kubeconfig(tokenFile="/etc/passwd"),
    UNREACHABLE_KUBECONFIG.replace("insecure-skip-tls-verify: true", "certificate-authority: /etc/ssl/ca.pem"),
]


@pytest.mark.parametrize("body, field, message", [
    ({"name": "UPPER"}, "name", "lowercase"),
    ({"name": "dots.in.name"}, "name", "lowercase"),
    ({"name": "a" * 51}, "name", "at most 50"),
    ({"name": ""}, "name", "blank"),
    ({"name": "east"}, "name", "already exists"),
    ({"teams": ["alpha", "nope"]}, "teams", "'nope'"),
    ({"teams": "alpha"}, "teams", "list"),
    ({"capacity_notes": "x" * 2001}, "capacity_notes", "2000"),
    ({"enabled": "perhaps"}, "enabled", "boolean"),
    ({"tenant_policy": {"runtime_classes": [""]}}, "tenant_policy", "non-empty strings"),
    ({"kubeconfig": ""}, "kubeconfig", "blank"),
    ({"kubeconfig": "not: [yaml"}, "kubeconfig", "not valid YAML"),
    ({"kubeconfig": "apiVersion: v1\nkind: Config\n"}, "kubeconfig", "needs clusters, users and a current-context"),
    ({"kubeconfig": UNREACHABLE_KUBECONFIG}, "kubeconfig", "cannot reach the host cluster"),
    ({"kubeconfig": UNREACHABLE_KUBECONFIG.replace("current-context: admin@nowhere", "current-context: elsewhere")},
     "kubeconfig", "not usable"),
    ({"kubeconfig": UNREACHABLE_KUBECONFIG.replace("insecure-skip-tls-verify: true", "certificate-authority-data: abc")},
     "kubeconfig", "not usable"),
    *[({"kubeconfig": text}, "kubeconfig", "refers to files or commands") for text in UNSAFE],
])
def test_it_refuses_bad_registrations_and_writes_nothing(staff, world, body, field, message):
    make_host("east")
    before = counts()
    r = staff.post("/api/v1/host-clusters/", {"name": "west", "kubeconfig": UNREACHABLE_KUBECONFIG, **body}, format="json")
    assert r.status_code == 400, r.json()
    assert field in r.json()["errors"], r.json()
    assert message in " ".join(r.json()["errors"][field])
    assert counts() == before


def test_it_reports_every_bad_field_at_once(staff, world):
    r = staff.post("/api/v1/host-clusters/", {"name": "Bad Name", "kubeconfig": "x: [", "teams": ["nope"]}, format="json")
    assert r.status_code == 400
    assert {"name", "kubeconfig", "teams"} <= set(r.json()["errors"])


def test_it_never_runs_a_command_or_reads_a_file_named_in_a_kubeconfig(staff, world, tmp_path):
    marker = tmp_path / "ran"
    text = kubeconfig(exec={"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
                            "args": ["-c", f"touch {marker}"]})
    r = staff.post("/api/v1/host-clusters/", {"name": "west", "kubeconfig": text}, format="json")
    assert r.status_code == 400
    assert not marker.exists()
    assert "touch" not in r.content.decode()


def test_bad_input_never_echoes_the_kubeconfig(staff, staff_page, world):
    secret = kubeconfig(token="s3cr3t-t0ken-value")
    r = staff.post("/api/v1/host-clusters/", {"name": "Bad", "kubeconfig": secret}, format="json")
    assert r.status_code == 400 and "s3cr3t" not in r.content.decode()
    r = staff_page.post("/host-clusters/", {"name": "Bad", "kubeconfig": secret})
    assert r.status_code == 400 and b"s3cr3t" not in r.content
    assert b"lowercase letters" in r.content


# Changing ---------------------------------------------------------------------
def test_it_changes_enabled_notes_and_teams_and_audits_without_the_kubeconfig(staff, world):
    make_host("east")
    r = staff.patch("/api/v1/host-clusters/east/", {"enabled": False, "capacity_notes": "draining", "teams": ["beta"]},
                    format="json")
    assert r.status_code == 200, r.json()
    assert (r.json()["enabled"], r.json()["capacity_notes"], r.json()["teams"]) == (False, "draining", ["beta"])
    event = AuditEvent.objects.get(action="host_cluster.update")
    assert (event.actor, event.target_name, event.team) == (world.staff, "east", None)
    assert event.data == {"before": {"enabled": True, "capacity_notes": "", "teams": [], "tenant_policy": {}},
                          "after": {"enabled": False, "capacity_notes": "draining", "teams": ["beta"],
                                    "tenant_policy": {}}}
    r = staff.patch("/api/v1/host-clusters/east/", {"teams": []}, format="json")
    assert r.json()["teams"] == []


@pytest.mark.parametrize("body, field", [
    ({"kubeconfig": UNREACHABLE_KUBECONFIG}, "kubeconfig"),
    ({"kubeconfig": UNSAFE[0]}, "kubeconfig"),
    ({"teams": ["nope"]}, "teams"),
    ({"capacity_notes": "x" * 2001}, "capacity_notes"),
    ({"enabled": "perhaps"}, "enabled"),
])
def test_it_refuses_bad_changes_and_keeps_everything(staff, world, body, field):
    host = make_host("east", capacity_notes="kept")
    host.kubeconfig = "apiVersion: v1\n# the stored one\n"
    host.save()
    before = counts()
    r = staff.patch("/api/v1/host-clusters/east/", {"capacity_notes": "changed", **body}, format="json")
    assert r.status_code == 400
    assert field in r.json()["errors"]
    assert counts() == before
    host = HostCluster.objects.get(pk=host.pk)
    assert (host.capacity_notes, host.kubeconfig, host.enabled) == ("kept", "apiVersion: v1\n# the stored one\n", True)


POLICY = {
    "csi_drivers": ["secrets-store.csi.k8s.io"],
    "tolerations": [{"key": "dedicated", "value": "tenants", "effect": "NoSchedule"}],
    "node_label_keys": ["topology.kubernetes.io/zone"],
    "runtime_classes": ["gvisor"],
    "external_name_services": True,
}
STORED_POLICY = {**POLICY, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "tenants",
                                             "effect": "NoSchedule"}]}


def test_it_sets_a_tenant_policy_stored_in_its_checked_form_and_audited(staff, world):
    make_host("east")
    r = staff.patch("/api/v1/host-clusters/east/", {"tenant_policy": POLICY}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["tenant_policy"] == STORED_POLICY
    host = HostCluster.objects.get(name="east")
    assert host.policy().allows_toleration({"key": "dedicated", "value": "tenants", "effect": "NoSchedule"})
    assert host.policy().external_name_services
    event = AuditEvent.objects.get(action="host_cluster.update")
    assert (event.data["before"]["tenant_policy"], event.data["after"]["tenant_policy"]) == ({}, STORED_POLICY)
    r = staff.patch("/api/v1/host-clusters/east/", {"tenant_policy": {"csi_drivers": [], "runtime_classes": ["b", "a"]}},
                    format="json")
    assert r.json()["tenant_policy"] == {"runtime_classes": ["a", "b"]}
    r = staff.patch("/api/v1/host-clusters/east/", {"tenant_policy": {}}, format="json")
    assert r.json()["tenant_policy"] == {}
    assert HostCluster.objects.get(name="east").policy() == type(host.policy())()


@pytest.mark.parametrize("policy, message", [
    ("everything", "Give an object"),
    (["csi_drivers"], "Give an object"),
    ({"csi_drivers": ["x"], "hostPath": True}, "unknown policy keys: hostPath"),
    ({"csi_drivers": "secrets-store.csi.k8s.io"}, "csi_drivers must be a list of non-empty strings"),
    ({"runtime_classes": 5}, "runtime_classes must be a list of non-empty strings"),
    ({"tolerations": {"key": "a"}}, "tolerations must be a list of tolerations"),
    ({"tolerations": [{"key": "a", "tolerationSeconds": 5}]}, "a toleration is a mapping of"),
    ({"tolerations": [{"key": "a", "value": 1}]}, "toleration fields are strings"),
    ({"external_name_services": "yes"}, "external_name_services must be true or false"),
])
def test_it_refuses_a_bad_tenant_policy_and_keeps_the_old_one(staff, world, policy, message):
    make_host("east", tenant_policy=STORED_POLICY)
    before = counts()
    r = staff.patch("/api/v1/host-clusters/east/", {"tenant_policy": policy, "capacity_notes": "x"}, format="json")
    assert r.status_code == 400, r.json()
    assert message in " ".join(r.json()["errors"]["tenant_policy"])
    assert counts() == before
    assert HostCluster.objects.get(name="east").tenant_policy == STORED_POLICY


def test_the_edit_page_sets_the_tenant_policy_as_yaml(staff_page, world):
    make_host("east", tenant_policy=STORED_POLICY)
    page = staff_page.get("/host-clusters/east/").content.decode()
    assert "secrets-store.csi.k8s.io" in page and "Tenant policy" in page
    r = staff_page.post("/host-clusters/east/", {"tenant_policy": "runtime_classes: [kata]\n", "kubeconfig": ""})
    assert r.status_code == 302
    assert HostCluster.objects.get(name="east").policy().runtime_classes == ("kata",)
    for text, message in (("runtime_classes: [kata", b"Not valid YAML."), ("- a list", b"Write a mapping"),
                          ("hostPath: true", b"unknown policy keys: hostPath")):
        r = staff_page.post("/host-clusters/east/", {"tenant_policy": text, "kubeconfig": ""})
        assert r.status_code == 400 and message in r.content
    assert HostCluster.objects.get(name="east").policy().runtime_classes == ("kata",)


def test_the_name_cannot_be_changed(world):
    from django.core.exceptions import ValidationError

    from accounts.audit import Actor
    from provisioning.services import update_host_cluster

    host = make_host("east")
    with pytest.raises(ValidationError) as exc:
        update_host_cluster(Actor(world.staff), host, name="west")
    assert "name" in exc.value.message_dict


# Removing ---------------------------------------------------------------------
@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.PROVISIONING, Phase.READY, Phase.FAILED, Phase.DELETING])
def test_it_keeps_a_host_cluster_that_a_live_vcluster_is_placed_on(staff, world, phase):
    host = make_host("east")
    place(make_vcluster(world.alpha, "web", phase=phase), host)
    before = counts()
    r = staff.delete("/api/v1/host-clusters/east/")
    assert r.status_code == 400
    assert "1 vcluster is still placed on east" in r.json()["errors"]["name"][0]
    assert counts() == before


def test_it_removes_a_host_cluster_and_keeps_deleted_vclusters_receipts(staff, world):
    host = make_host("east")
    receipt = {"steps": [{"step": "Delete host namespace", "done": "Namespace vc-alpha-gone"}],
               "finished_at": "2026-11-26T10:00:00+00:00"}
    gone = make_vcluster(world.alpha, "gone", phase=Phase.DELETED)
    Placement.objects.create(vcluster=gone, host_cluster=host, host_namespace="vc-alpha-gone", receipt=receipt)
    assert staff.delete("/api/v1/host-clusters/east/").status_code == 204
    assert not HostCluster.objects.exists()
    event = AuditEvent.objects.get(action="host_cluster.delete")
    assert (event.target_name, event.data) == ("east", {"enabled": True, "capacity_notes": "", "teams": [],
                                                     "tenant_policy": {}})
    placement = Placement.objects.get(vcluster=gone)
    assert (placement.host_cluster, placement.host_namespace, placement.receipt) == (None, "vc-alpha-gone", receipt)


# Pages ------------------------------------------------------------------------
def test_the_page_lists_host_clusters_and_platform_admins_find_it_in_the_menu(staff_page, world, api):
    east = make_host("east", capacity_notes="8 kwok nodes")
    east.teams.set([world.beta])
    place(make_vcluster(world.alpha, "ready", phase=Phase.READY), east)
    page = staff_page.get("/host-clusters/").content.decode()
    assert 'href="/host-clusters/"' in page and ">Host clusters</a>" in page
    assert 'id="host-east"' in page and "8 kwok nodes" in page and "beta" in page
    assert 'data-enabled="true"' in page and ">Disable<" in page
    assert "Register a host cluster" in page
    member = Client()
    member.force_login(world.owner)
    assert b'href="/host-clusters/"' not in member.get("/").content


def test_toggling_with_htmx_swaps_just_the_row(staff_page, world):
    make_host("east")
    r = staff_page.post("/host-clusters/east/toggle/", **HTMX)
    body = r.content.decode()
    assert r.status_code == 200 and body.lstrip().startswith('<tr id="host-east"')
    assert 'data-enabled="false"' in body and ">Enable<" in body and "<html" not in body
    assert HostCluster.objects.get(name="east").enabled is False
    r = staff_page.post("/host-clusters/east/toggle/")  # without htmx: back to the page
    assert r.status_code == 302 and r["Location"] == "/host-clusters/"
    assert HostCluster.objects.get(name="east").enabled is True
    assert AuditEvent.objects.filter(action="host_cluster.update").count() == 2


def test_the_edit_page_changes_notes_and_teams_and_keeps_the_kubeconfig(staff_page, world):
    host = make_host("east")
    place(make_vcluster(world.alpha, "web", phase=Phase.READY), host, "vc-alpha-web")
    page = staff_page.get("/host-clusters/east/").content.decode()
    assert "vc-alpha-web" in page and "Replace kubeconfig" in page
    assert "not-a-real-token" not in page
    assert "Remove host cluster" not in page  # a live vcluster is placed on it
    r = staff_page.post("/host-clusters/east/", {"capacity_notes": "16 nodes", "teams": ["alpha", "beta"], "kubeconfig": ""})
    assert r.status_code == 302
    host = HostCluster.objects.get(pk=host.pk)
    assert (host.enabled, host.capacity_notes, host.kubeconfig) == (False, "16 nodes", UNREACHABLE_KUBECONFIG)
    assert sorted(host.teams.values_list("slug", flat=True)) == ["alpha", "beta"]
    r = staff_page.post("/host-clusters/east/", {"enabled": "on", "kubeconfig": "not: [yaml"})
    assert r.status_code == 400 and b"not valid YAML" in r.content
    assert HostCluster.objects.get(pk=host.pk).kubeconfig == UNREACHABLE_KUBECONFIG


def test_the_page_refuses_to_remove_a_host_cluster_in_use(staff_page, world):
    host = make_host("east")
    place(make_vcluster(world.alpha, "web", phase=Phase.READY), host)
    r = staff_page.post("/host-clusters/east/delete/", follow=True)
    assert b"still placed on east" in r.content
    assert HostCluster.objects.filter(name="east").exists()


# With a real cluster ----------------------------------------------------------
def test_it_registers_a_reachable_cluster_and_keeps_its_kubeconfig_secret(staff, world, host_cluster):
    text = host_cluster.admin_kubeconfig.read_text()
    r = staff.post("/api/v1/host-clusters/", {"name": "local", "kubeconfig": text, "capacity_notes": "kwok",
                                              "teams": ["alpha"]}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json() == {**r.json(), "name": "local", "enabled": True, "teams": ["alpha"], "load": 0}
    assert "kubeconfig" not in r.json()
    host = HostCluster.objects.get(name="local")
    assert host.kubeconfig == text
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM provisioning_hostcluster WHERE id = %s", [host.pk])
        stored = cursor.fetchone()[0]
    assert "client-key-data" not in stored and "BEGIN" not in stored
    event = AuditEvent.objects.get(action="host_cluster.create")
    assert event.data == {"enabled": True, "capacity_notes": "kwok", "teams": ["alpha"], "tenant_policy": {}}
    assert hosts.choose_for(world.alpha) == host

    # Replacing it with one that does not answer keeps the old one.
    r = staff.patch("/api/v1/host-clusters/local/", {"kubeconfig": UNREACHABLE_KUBECONFIG}, format="json")
    assert r.status_code == 400 and "cannot reach" in r.json()["errors"]["kubeconfig"][0]
    assert HostCluster.objects.get(name="local").kubeconfig == text
    r = staff.patch("/api/v1/host-clusters/local/", {"kubeconfig": text}, format="json")
    assert r.status_code == 200
    replaced = AuditEvent.objects.filter(action="host_cluster.update").latest("id")
    assert replaced.data["kubeconfig_replaced"] is True
    assert all("kubeconfig" not in str(e.data).replace("kubeconfig_replaced", "") for e in AuditEvent.objects.all())


def test_it_registers_a_reachable_cluster_through_the_page(staff_page, world, host_cluster):
    r = staff_page.post("/host-clusters/", {"name": "local", "kubeconfig": host_cluster.admin_kubeconfig.read_text(),
                                            "capacity_notes": "", "enabled": "on", "teams": ["beta"]})
    assert r.status_code == 302, r.content.decode()
    host = HostCluster.objects.get(name="local")
    assert (host.enabled, list(host.teams.values_list("slug", flat=True))) == (True, ["beta"])
    page = staff_page.get("/host-clusters/").content.decode()
    assert 'id="host-local"' in page and "Host cluster local registered." in page
