"""Host clusters, registered and changed by platform admins in the API and the portal:
the kubeconfig is checked by connecting, stored encrypted, never returned, logged or
audited; bad input answers 400 and writes nothing. Who may call what is in
test_authorization_matrix.py. Tests that register a real cluster use the session's
`host_cluster` fixture (marker `kube`)."""

import http.server
import socket
import threading

import pytest
import yaml
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from provisioning.hostclusters import placement as hosts
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


# What a host cluster row gets when nothing is said about its runtime.
DEFAULT_RUNTIME = {"runtime": "kubernetes", "runtime_image": "", "access": "nodeport", "access_address": ""}


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
    assert set(first) == {"name", "enabled", "in_cluster", "capacity_notes", "teams", "tenant_policy", "load", "created_at",
                          *DEFAULT_RUNTIME}
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
    assert event.data == {"before": {"enabled": True, "in_cluster": False, "capacity_notes": "", "teams": [], "tenant_policy": {},
                                     **DEFAULT_RUNTIME},
                          "after": {"enabled": False, "in_cluster": False, "capacity_notes": "draining", "teams": ["beta"],
                                    "tenant_policy": {}, **DEFAULT_RUNTIME}}
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
    ({"ingress_hosts": ["*"]}, "ingress_hosts are lower-case DNS names"),
    ({"ingress_hosts": ["shop.*.example.com", "Shop.example.com"]}, "not: Shop.example.com, shop.*.example.com"),
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
    from provisioning.hostclusters.services import update_host_cluster

    host = make_host("east")
    with pytest.raises(ValidationError) as exc:
        update_host_cluster(Actor(world.staff), host, name="west")
    assert "name" in exc.value.message_dict


# Runtime and access -----------------------------------------------------------
DIGEST = "@sha256:" + "0" * 64


@pytest.mark.parametrize("body, field, message", [
    ({"runtime": "docker"}, "runtime", "not a valid choice"),
    ({"access": "hostport"}, "access", "not a valid choice"),
    ({"runtime_image": "registry.example.com/vcportal/runtime:1.0 latest"}, "runtime_image", "image reference"),
    ({"runtime_image": "vcportal/Runtime"}, "runtime_image", "image reference"),
    ({"runtime_image": "runtime:"}, "runtime_image", "image reference"),
    ({"runtime_image": "runtime@sha256:abc"}, "runtime_image", "image reference"),
    ({"runtime_image": "r/" + "a" * 299}, "runtime_image", "At most 300"),
    ({}, "access_address", "Give the address of a node"),  # nodeport, the default, needs one
    ({"access_address": "not an address"}, "access_address", "Give the address of a node"),
    ({"access_address": "10.0.0.256"}, "access_address", "Give the address of a node"),
    ({"access_address": "node_1.example.com"}, "access_address", "Give the address of a node"),
    ({"access": "ingress"}, "access_address", "Give the DNS domain"),
    ({"access": "ingress", "access_address": "10.0.0.5"}, "access_address", "Give the DNS domain"),
    ({"access": "ingress", "access_address": "*.vc.example.com"}, "access_address", "Give the DNS domain"),
    ({"access": "ingress", "access_address": ("a" * 60 + ".") * 4 + "com"}, "access_address", "at most 189"),
    ({"access_address": "x" * 254}, "access_address", "At most 253"),
])
def test_it_refuses_bad_runtime_settings_at_registration_and_writes_nothing(staff, world, body, field, message):
    before = counts()
    r = staff.post("/api/v1/host-clusters/", {"name": "west", "kubeconfig": UNREACHABLE_KUBECONFIG, **body},
                   format="json")
    assert r.status_code == 400, r.json()
    assert message in " ".join(r.json()["errors"][field]), r.json()
    assert counts() == before


def test_it_reports_bad_runtime_settings_with_the_other_bad_fields(staff, world):
    r = staff.post("/api/v1/host-clusters/", {"name": "Bad Name", "kubeconfig": UNREACHABLE_KUBECONFIG,
                                              "runtime_image": "no spaces please", "access": "ingress"}, format="json")
    assert r.status_code == 400
    assert set(r.json()["errors"]) == {"name", "kubeconfig", "runtime_image", "access_address"}


@pytest.mark.parametrize("body, stored", [
    ({"access_address": "203.0.113.10"}, {"access_address": "203.0.113.10"}),
    ({"access_address": " Node1.Example.COM "}, {"access_address": "node1.example.com"}),
    ({"access_address": "2001:db8::1"}, {"access_address": "2001:db8::1"}),
    ({"access_address": "localhost"}, {"access_address": "localhost"}),
    ({"access": "ingress", "access_address": "vc.example.com"}, {"access": "ingress", "access_address": "vc.example.com"}),
    ({"access": "loadbalancer"}, {"access": "loadbalancer"}),
    ({"runtime": "local"}, {"runtime": "local"}),  # the local runtime uses no access settings
    ({"runtime": "local", "access": "ingress"}, {"runtime": "local", "access": "ingress"}),
    ({"access": "loadbalancer", "runtime_image": "127.0.0.1:5390/vcportal/runtime:v1.37.2-ab12"},
     {"access": "loadbalancer", "runtime_image": "127.0.0.1:5390/vcportal/runtime:v1.37.2-ab12"}),
    ({"access": "loadbalancer", "runtime_image": "ghcr.io/org/vc-runtime" + DIGEST},
     {"access": "loadbalancer", "runtime_image": "ghcr.io/org/vc-runtime" + DIGEST}),
    ({"access": "loadbalancer", "runtime_image": "runtime:1.0" + DIGEST},
     {"access": "loadbalancer", "runtime_image": "runtime:1.0" + DIGEST}),
])
def test_it_changes_the_runtime_settings(staff, world, body, stored):
    make_host("east")
    r = staff.patch("/api/v1/host-clusters/east/", body, format="json")
    assert r.status_code == 200, r.json()
    expected = {**DEFAULT_RUNTIME, **stored}
    assert {field: r.json()[field] for field in DEFAULT_RUNTIME} == expected
    host = HostCluster.objects.get(name="east")
    assert {field: getattr(host, field) for field in DEFAULT_RUNTIME} == expected


def test_a_runtime_change_is_checked_against_the_settings_it_keeps_and_audited(staff, world):
    make_host("east", access_address="203.0.113.10")
    before = counts()
    r = staff.patch("/api/v1/host-clusters/east/", {"access": "ingress", "capacity_notes": "x"}, format="json")
    assert r.status_code == 400  # an IP address is no DNS domain
    assert "Give the DNS domain" in r.json()["errors"]["access_address"][0]
    assert counts() == before
    assert HostCluster.objects.get(name="east").access == "nodeport"

    r = staff.patch("/api/v1/host-clusters/east/", {"runtime": "local"}, format="json")
    assert r.status_code == 200, r.json()
    event = AuditEvent.objects.get(action="host_cluster.update")
    assert (event.data["before"]["runtime"], event.data["after"]["runtime"]) == ("kubernetes", "local")
    assert event.data["after"]["access_address"] == "203.0.113.10"


def test_changing_the_runtime_leaves_placed_vclusters_as_they_were(staff, world):
    host = make_host("east", runtime="local")
    placement = place(make_vcluster(world.alpha, "web", phase=Phase.READY), host)
    r = staff.patch("/api/v1/host-clusters/east/", {"runtime": "kubernetes", "access": "loadbalancer"}, format="json")
    assert r.status_code == 200, r.json()
    assert Placement.objects.get(pk=placement.pk).runtime == "local"


def test_the_schema_documents_runtime_and_access_with_their_choices(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    for name in ("HostCluster", "HostClusterCreateRequest", "PatchedHostClusterUpdateRequest"):
        properties = components[name]["properties"]
        assert set(DEFAULT_RUNTIME) <= set(properties), name
        assert "new vclusters only" in properties["runtime"]["description"]
        assert "<host-namespace>.<domain>" in properties["access_address"]["description"]
    enums = {name: set(components[name]["enum"]) for name in components if "enum" in components[name]}
    assert {"kubernetes", "local"} in enums.values() and {"nodeport", "loadbalancer", "ingress", "clusterip"} in enums.values()
    assert "runtime" in components["Placement"]["properties"]


def test_the_pages_show_and_set_runtime_and_access(staff_page, world):
    make_host("east", access_address="203.0.113.10")
    make_host("west", runtime="local")
    page = staff_page.get("/host-clusters/").content.decode()
    east = page[page.index('id="host-east"'):page.index('id="host-west"')]
    assert 'data-runtime="kubernetes"' in east and 'data-access="nodeport"' in east and "203.0.113.10" in east
    west = page[page.index('id="host-west"'):]
    assert 'data-runtime="local"' in west and "Only the kubernetes runtime uses it" in west
    form = page[page.index('id="new-host"'):]
    assert '<select name="runtime"' in form and '<option value="kubernetes" selected>' in form
    assert '<select name="access"' in form and 'name="access_address"' in form and 'name="runtime_image"' in form
    assert "new vclusters only" in form

    edit = staff_page.get("/host-clusters/west/").content.decode()
    assert '<option value="local" selected>' in edit and "runtime <span class=\"mono\">local</span>" in edit
    r = staff_page.post("/host-clusters/west/", {"runtime": "kubernetes", "access": "ingress",
                                                 "access_address": "203.0.113.10", "kubeconfig": ""})
    assert r.status_code == 400 and b"Give the DNS domain" in r.content
    assert HostCluster.objects.get(name="west").runtime == "local"
    r = staff_page.post("/host-clusters/west/", {"runtime": "kubernetes", "access": "ingress",
                                                 "access_address": "vc.example.com", "kubeconfig": ""})
    assert r.status_code == 302
    west = HostCluster.objects.get(name="west")
    assert (west.runtime, west.access, west.access_address) == ("kubernetes", "ingress", "vc.example.com")


def test_the_register_page_reports_bad_runtime_settings_and_writes_nothing(staff_page, world):
    before = counts()
    r = staff_page.post("/host-clusters/", {"name": "west", "kubeconfig": UNREACHABLE_KUBECONFIG, "runtime": "docker",
                                            "access": "nodeport", "runtime_image": "a b", "access_address": ""})
    assert r.status_code == 400 and b"Select a valid choice" in r.content
    r = staff_page.post("/host-clusters/", {"name": "west", "kubeconfig": UNREACHABLE_KUBECONFIG,
                                            "runtime": "kubernetes", "access": "nodeport", "runtime_image": "a b",
                                            "access_address": ""})
    assert r.status_code == 400
    assert b"Give an image reference" in r.content and b"Give the address of a node" in r.content
    assert counts() == before


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
    assert (event.target_name, event.data) == ("east", {"enabled": True, "in_cluster": False, "capacity_notes": "", "teams": [],
                                                     "tenant_policy": {}, **DEFAULT_RUNTIME})
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
                                              "teams": ["alpha"], "access_address": "127.0.0.1"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json() == {**r.json(), "name": "local", "enabled": True, "teams": ["alpha"], "load": 0,
                        **DEFAULT_RUNTIME, "access_address": "127.0.0.1"}
    assert "kubeconfig" not in r.json()
    host = HostCluster.objects.get(name="local")
    assert host.kubeconfig == text
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM provisioning_hostcluster WHERE id = %s", [host.pk])
        stored = cursor.fetchone()[0]
    assert "client-key-data" not in stored and "BEGIN" not in stored
    event = AuditEvent.objects.get(action="host_cluster.create")
    assert event.data == {"enabled": True, "in_cluster": False, "capacity_notes": "kwok", "teams": ["alpha"], "tenant_policy": {},
                          **DEFAULT_RUNTIME, "access_address": "127.0.0.1"}
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
                                            "capacity_notes": "", "enabled": "on", "teams": ["beta"],
                                            "runtime": "local", "access": "nodeport", "runtime_image": "",
                                            "access_address": ""})
    assert r.status_code == 302, r.content.decode()
    host = HostCluster.objects.get(name="local")
    assert (host.enabled, list(host.teams.values_list("slug", flat=True)), host.runtime) == (True, ["beta"], "local")
    page = staff_page.get("/host-clusters/").content.decode()
    assert 'id="host-local"' in page and "Host cluster local registered." in page


# Registering: kubeconfigs that point somewhere odd, or are odd themselves ------
@pytest.fixture
def odd_servers():
    """Listeners on this machine that are not Kubernetes: one that accepts and never
    answers, one that answers HTTP 403 with a body that must not be shown."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)

    class Forbidden(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(403)
            self.end_headers()
            self.wfile.write(b"internal-secret-body")

        def log_message(self, *args):
            pass

    forbidding = http.server.HTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=forbidding.serve_forever, daemon=True).start()
    yield {"silent": silent.getsockname()[1], "forbidding": forbidding.server_address[1]}
    forbidding.shutdown()
    silent.close()


def pointing_at(server: str) -> str:
    return UNREACHABLE_KUBECONFIG.replace("https://127.0.0.1:1", server)


def test_it_refuses_kubeconfigs_pointing_at_what_is_not_a_kubernetes_api_and_says_so(staff, world, odd_servers,
                                                                                     settings):
    redis_port = settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0]
    postgres_port = str(connection.settings_dict["PORT"] or 5432)
    cases = {
        f"https://127.0.0.1:{redis_port}": "no Kubernetes API server answered",  # Redis
        f"https://127.0.0.1:{postgres_port}": "no Kubernetes API server answered",  # PostgreSQL
        f"https://127.0.0.1:{odd_servers['silent']}": "no answer within 5 s",
        f"http://127.0.0.1:{odd_servers['forbidding']}": "answered HTTP 403",
        "https://127.0.0.1:0": "no Kubernetes API server answered",
        "file:///etc/passwd": "no Kubernetes API server answered",
        f"gopher://127.0.0.1:{redis_port}/_FLUSHALL": "no Kubernetes API server answered",
    }
    before = counts()
    for server, words in cases.items():
        r = staff.post("/api/v1/host-clusters/", {"name": "odd", "kubeconfig": pointing_at(server)}, format="json")
        assert r.status_code == 400, (server, r.content)
        message = " ".join(r.json()["errors"]["kubeconfig"])
        assert words in message, (server, message)
        assert "internal-secret-body" not in message and "HTTPHeaderDict" not in message, message
    assert counts() == before


@pytest.mark.parametrize("text, words", [
    ("[" * 5000 + "]" * 5000, "not valid YAML"),  # PyYAML raises RecursionError for this
    ("{a: " * 3000 + "1" + "}" * 3000, "not valid YAML"),
    ("\x00\x01" * 100, "Null characters are not allowed"),
    ("\x01\x02\ufffe" * 100, "not valid YAML"),
    ("a: &a [x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 8)}]\n"
                                                  for p, c in zip("abcdefgh", "bcdefghi"))
     + UNREACHABLE_KUBECONFIG, "cannot reach the host cluster"),  # aliases: never expanded
    (UNREACHABLE_KUBECONFIG + "#" * 2_000_000, "Request body is larger than"),
    ("clusters: 5\nusers: {}\ncurrent-context: []\n", "needs clusters, users and a current-context"),
    (UNREACHABLE_KUBECONFIG.replace("server: \"https://127.0.0.1:1\"", "server: [1, 2]"), "not usable"),
])
def test_it_refuses_malformed_or_oversized_kubeconfigs(staff, world, text, words):
    before = counts()
    r = staff.post("/api/v1/host-clusters/", {"name": "odd", "kubeconfig": text}, format="json")
    assert r.status_code == 400, r.content
    assert words in " ".join(m for messages in r.json()["errors"].values() for m in messages), r.json()
    assert counts() == before


def test_the_policy_field_refuses_deeply_nested_yaml(staff_page, world):
    r = staff_page.post("/host-clusters/", {"name": "odd", "kubeconfig": UNREACHABLE_KUBECONFIG,
                                            "tenant_policy": "[" * 5000})
    assert r.status_code == 400 and b"Not valid YAML" in r.content
