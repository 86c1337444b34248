import pytest
from cryptography.fernet import Fernet
from django.db import connection

from accounts.models import AuditEvent
from tests.portal.conftest import make_vcluster
from vclusters.models import Phase, VCluster

pytestmark = pytest.mark.django_db

KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: s3cr3t}}]\n"


def test_it_audits_break_glass_kubeconfig_downloads_with_the_address(api, world):
    vcluster = make_vcluster(world.alpha, "ready", phase=Phase.READY, kubeconfig=KUBECONFIG)
    r = api("staff").get(f"/api/v1/vclusters/{vcluster.pk}/kubeconfig/?admin=true", REMOTE_ADDR="10.1.2.3")
    assert r.status_code == 200
    assert r.content.decode() == KUBECONFIG
    assert r["Content-Type"] == "application/yaml"
    assert 'filename="alpha-ready-admin.kubeconfig"' in r["Content-Disposition"]
    event = AuditEvent.objects.get(action="vcluster.kubeconfig")
    assert (event.actor, event.ip_address, event.team, event.target_name) == (world.staff, "10.1.2.3", world.alpha, "ready")
    assert event.data["break_glass"] is True


def test_it_answers_409_until_ready(api, world):
    vcluster = make_vcluster(world.alpha, "pending")
    r = api("teammate").get(f"/api/v1/vclusters/{vcluster.pk}/kubeconfig/")
    assert r.status_code == 409
    assert "Ready" in r.json()["message"]
    assert not AuditEvent.objects.filter(action__in=["vcluster.kubeconfig", "vcluster.access.issue"]).exists()


def test_it_audits_every_change(api, world):
    owner, staff = api("owner"), api("staff")
    vcluster_id = owner.post("/api/v1/vclusters/", {"team": "alpha", "name": "a"}, format="json").json()["id"]
    owner.delete(f"/api/v1/vclusters/{vcluster_id}/")
    owner.patch("/api/v1/teams/alpha/members/viewer/", {"role": "member"}, format="json")
    owner.delete("/api/v1/teams/alpha/members/viewer/")
    staff.patch("/api/v1/teams/alpha/quota/", {"pods": 42}, format="json")
    staff.post("/api/v1/teams/", {"name": "Gamma"}, format="json")
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"vcluster.create", "vcluster.delete", "member.role", "member.remove", "quota.update", "team.create",
            "token.create"} <= actions
    quota = AuditEvent.objects.get(action="quota.update")
    assert (quota.data["before"]["pods"], quota.data["after"]["pods"], quota.actor_username) == (500, 42, "staff")


def test_it_trusts_x_forwarded_for_only_behind_a_proxy(api, world, settings):
    owner = api("owner")
    owner.post("/api/v1/vclusters/", {"team": "alpha", "name": "a"}, format="json",
               REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    settings.VCPORTAL_TRUST_X_FORWARDED_FOR = True
    owner.post("/api/v1/vclusters/", {"team": "alpha", "name": "b"}, format="json",
               REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.7")
    addresses = dict(AuditEvent.objects.filter(action="vcluster.create").values_list("target_name", "ip_address"))
    assert addresses == {"a": "10.0.0.1", "b": "192.0.2.7"}


def test_it_encrypts_kubeconfigs_at_rest(world):
    vcluster = make_vcluster(world.alpha, "ready", phase=Phase.READY, kubeconfig=KUBECONFIG)
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM vclusters_vcluster WHERE id = %s", [vcluster.pk])
        stored = cursor.fetchone()[0]
    assert "s3cr3t" not in stored and "apiVersion" not in stored
    assert VCluster.objects.get(pk=vcluster.pk).kubeconfig == KUBECONFIG


def test_it_reads_old_keys_after_rotation(world, settings):
    old = settings.FIELD_ENCRYPTION_KEYS
    vcluster = make_vcluster(world.alpha, "ready", phase=Phase.READY, kubeconfig=KUBECONFIG)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old]
    assert VCluster.objects.get(pk=vcluster.pk).kubeconfig == KUBECONFIG
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="no key"):
        VCluster.objects.get(pk=vcluster.pk)
