"""Personal vcluster credentials and the per-request check, against the database."""

import hashlib
from datetime import timedelta

import pytest
import yaml
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts import access
from accounts.models import AuditEvent, Membership, Role, hash_token
from accounts.services import change_role, remove_member
from gateway.kubestatus import Refusal
from gateway.models import AccessToken, Purpose
from gateway.services import authorize, issue_exec_credential, issue_kubeconfig, issue_token, revoke_token
from portal.errors import NotReady
from tests.portal.conftest import make_user, make_vcluster
from vclusters.models import Phase

from .conftest import actor

pytestmark = pytest.mark.django_db
PORTAL = "https://vcportal.example.com/"


def token_of(kubeconfig: str) -> str:
    return yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]


def test_a_kubeconfig_names_the_gateway_and_holds_a_token_stored_only_as_its_hash(world, ready):
    kubeconfig = issue_kubeconfig(actor(world.teammate), ready, PORTAL)
    doc = yaml.safe_load(kubeconfig)
    assert doc["clusters"][0]["cluster"] == {"server": f"https://vcportal.example.com/kube/vclusters/{ready.pk}"}
    token = token_of(kubeconfig)
    row = AccessToken.objects.get()
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.prefix, row.digest} and token.startswith(row.prefix)
    assert (row.user, row.vcluster) == (world.teammate, ready)


def test_tokens_live_12_hours_by_default_or_as_configured(world, ready, settings):
    before = timezone.now()
    issue_kubeconfig(actor(world.teammate), ready, PORTAL)
    settings.VCPORTAL_GATEWAY_TOKEN_TTL = 600
    issue_kubeconfig(actor(world.teammate), ready, PORTAL)
    default, configured = AccessToken.objects.order_by("id")
    assert timedelta(hours=12) <= default.expires_at - before < timedelta(hours=12, minutes=1)
    assert timedelta(minutes=10) <= configured.expires_at - before < timedelta(minutes=11)


def test_issuing_is_audited_without_the_token(world, ready):
    token = token_of(issue_kubeconfig(actor(world.viewer), ready, PORTAL))
    event = AuditEvent.objects.get(action="vcluster.access.issue")
    assert (event.actor, event.team, event.target_id) == (world.viewer, world.alpha, str(ready.pk))
    assert token not in str(event.data)


def test_viewers_get_a_kubeconfig_outsiders_do_not(world, ready):
    assert issue_kubeconfig(actor(world.viewer), ready, PORTAL)
    with pytest.raises(PermissionDenied):
        issue_kubeconfig(actor(world.outsider), ready, PORTAL)
    assert issue_kubeconfig(actor(world.staff), ready, PORTAL)


def test_no_credentials_before_ready(world):
    pending = make_vcluster(world.alpha, "later")
    with pytest.raises(NotReady):
        issue_kubeconfig(actor(world.teammate), pending, PORTAL)


def test_an_exec_credential_is_what_client_go_expects(world, ready):
    credential = issue_exec_credential(actor(world.teammate), ready)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    assert credential["kind"] == "ExecCredential"
    assert authorize(credential["status"]["token"], ready.pk).username == "teammate"
    assert credential["status"]["expirationTimestamp"].endswith("Z")


# The per-request check ------------------------------------------------------------
def grant_for(user, vcluster):
    return authorize(token_of(issue_kubeconfig(actor(user), vcluster, PORTAL)), vcluster.pk)


def refusal(token, vcluster_id) -> Refusal:
    with pytest.raises(Refusal) as caught:
        authorize(token, vcluster_id)
    return caught.value


@pytest.mark.parametrize("persona", ["outsider", "viewer", "teammate", "owner", "staff"])
def test_the_request_check_agrees_with_the_connect_rule(world, ready, persona):
    """authorize() is raw SQL for speed; it must let through exactly whom
    access.allowed(user, "connect", vcluster) lets connect. The token is made directly:
    issuing one already applies the rule under test."""
    user = world.users[persona]
    token = AccessToken.generate()
    AccessToken.objects.create(user=user, vcluster=ready, prefix=token[:12], digest=hash_token(token),
                               expires_at=timezone.now() + timedelta(hours=1))
    try:
        authorize(token, ready.pk)
        passed = True
    except Refusal as refused:
        assert refused.code == 403
        passed = False
    assert passed is access.allowed(user, "connect", ready)


def test_grants_carry_the_person_their_team_and_their_role(world, ready):
    grant = grant_for(world.teammate, ready)
    assert grant.kube_user == "vcportal:teammate"
    assert grant.groups == ("vcportal:team:alpha", "vcportal:role:member")
    assert grant_for(world.viewer, ready).groups == ("vcportal:team:alpha", "vcportal:role:viewer")
    assert grant_for(world.staff, ready).groups == ("vcportal:team:alpha", "vcportal:role:platform-admin")
    Membership.objects.create(team=world.alpha, user=world.staff, role=Role.VIEWER)
    assert grant_for(world.staff, ready).groups == (
        "vcportal:team:alpha", "vcportal:role:viewer", "vcportal:role:platform-admin")


def test_a_role_change_applies_to_the_next_request(world, ready):
    token = token_of(issue_kubeconfig(actor(world.viewer), ready, PORTAL))
    membership = Membership.objects.get(team=world.alpha, user=world.viewer)
    change_role(actor(world.owner), membership, role=Role.MEMBER)
    assert authorize(token, ready.pk).groups[-1] == "vcportal:role:member"


def test_refused_at_once(world, ready):
    token = token_of(issue_kubeconfig(actor(world.teammate), ready, PORTAL))
    assert refusal("vck_unknown", ready.pk).code == 401
    assert refusal(token, ready.pk + 1000).code == 401  # a token is for one vcluster

    remove_member(actor(world.owner), Membership.objects.get(team=world.alpha, user=world.teammate))
    assert refusal(token, ready.pk).code == 403
    assert "not a member of team alpha" in refusal(token, ready.pk).message
    Membership.objects.create(team=world.alpha, user=world.teammate, role=Role.MEMBER)
    assert authorize(token, ready.pk)

    for phase, code, words in [(Phase.FAILED, 503, "failed"), (Phase.PROVISIONING, 503, "not ready"),
                               (Phase.DELETING, 404, "deleted"), (Phase.DELETED, 404, "deleted"),
                               (Phase.DELETE_FAILED, 404, "deleted")]:
        ready.__class__.objects.filter(pk=ready.pk).update(phase=phase)
        assert (refusal(token, ready.pk).code, words in refusal(token, ready.pk).message) == (code, True)
    ready.__class__.objects.filter(pk=ready.pk).update(phase=Phase.READY)

    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in refusal(token, ready.pk).message
    AccessToken.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    world.teammate.is_active = False
    world.teammate.save()
    assert "disabled" in refusal(token, ready.pk).message


def test_tokens_expired_or_revoked_past_the_retention_are_pruned_by_the_beat_task(world, ready, settings):
    from django.conf import settings as live_settings

    from gateway.tasks import prune_access_tokens

    assert live_settings.CELERY_BEAT_SCHEDULE["prune-gateway-tokens"]["task"] == prune_access_tokens.name
    settings.VCPORTAL_GATEWAY_TOKEN_RETENTION = 3600
    now, survivors = timezone.now(), set()
    for expires, revoked, survives in [
        (now + timedelta(hours=1), None, True),
        (now - timedelta(minutes=59), None, True),  # expired within the retention
        (now + timedelta(hours=1), now - timedelta(minutes=59), True),  # revoked within it
        (now - timedelta(minutes=61), None, False),
        (now + timedelta(hours=1), now - timedelta(minutes=61), False),
    ]:
        row, _ = issue_token(actor(world.teammate), ready, Purpose.KUBECONFIG)
        AccessToken.objects.filter(pk=row.pk).update(expires_at=expires, revoked_at=revoked)
        if survives:
            survivors.add(row.pk)
    assert prune_access_tokens.delay().get() == 2
    assert set(AccessToken.objects.values_list("pk", flat=True)) == survivors


def test_revoking_is_for_the_owner_and_team_admins(world, ready):
    token = token_of(issue_kubeconfig(actor(world.teammate), ready, PORTAL))
    row = AccessToken.objects.get()
    with pytest.raises(PermissionDenied):
        revoke_token(actor(world.viewer), row)
    revoke_token(actor(world.owner), row)
    assert "revoked" in refusal(token, ready.pk).message
    assert AuditEvent.objects.filter(action="vcluster.access.revoke", actor=world.owner).exists()


def test_a_second_vcluster_of_the_same_team_needs_its_own_token(world, ready):
    other = make_vcluster(world.alpha, "api", phase=Phase.READY, kubeconfig=ready.kubeconfig)
    token = token_of(issue_kubeconfig(actor(world.teammate), ready, PORTAL))
    assert refusal(token, other.pk).code == 401


def test_tokens_of_people_outside_the_team_do_not_open_it(world, ready):
    theirs = make_vcluster(world.beta, "b", phase=Phase.READY, kubeconfig=ready.kubeconfig)
    token = token_of(issue_kubeconfig(actor(world.outsider), theirs, PORTAL))
    assert refusal(token, ready.pk).code == 401
    stranger = make_user("stranger")
    with pytest.raises(PermissionDenied):
        issue_kubeconfig(actor(stranger), ready, PORTAL)


def test_a_gateway_url_and_private_ca_of_its_own_go_into_kubeconfigs(world, ready, settings, tmp_path):
    import base64

    from django.core.management import call_command

    call_command("gateway_certificate", str(tmp_path / "tls"), "--name", "portal.internal")
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    settings.VCPORTAL_GATEWAY_URL = "https://portal.internal:8443"
    settings.VCPORTAL_GATEWAY_CA_FILE = str(tmp_path / "tls" / "ca.crt")
    cluster = yaml.safe_load(issue_kubeconfig(actor(world.teammate), ready, PORTAL))["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://portal.internal:8443/kube/vclusters/{ready.pk}"
    assert base64.b64decode(cluster["certificate-authority-data"]) == (tmp_path / "tls" / "ca.crt").read_bytes()
