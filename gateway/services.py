"""Personal, short-lived, revocable credentials for vclusters, and the check that every
request through the gateway passes.

A token names a person and a vcluster and expires (VCPORTAL_GATEWAY_TOKEN_TTL, 12 h by
default); only its sha256 is stored. It carries no rights of its own: each request
looks up, in one query, the token, the person's role in the vcluster's team *now* and
the vcluster's phase, so revoking a token, removing a member, lowering a role or
deleting the vcluster takes effect on the very next request (the gateway keeps that row
between requests only until such a change commits: gateway.grants).
"""

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import access
from accounts.audit import Actor, record
from accounts.models import Membership, Role, hash_token
from portal.errors import NotReady
from provisioning.rbac import PLATFORM_ADMIN, role_group
from vclusters.lifecycle import PHASES, Phase
from vclusters.models import VCluster

from .kubestatus import Refusal
from .models import AccessToken, Purpose

USER_PREFIX = "vcportal:"
TEAM_GROUP_PREFIX = "vcportal:team:"
EXEC_CREDENTIAL_API = "client.authentication.k8s.io/v1"
RENEW_HINT = "Download a new kubeconfig from the portal."
ROLES = frozenset(Role.values)  # Role.values builds a new list on every access: not per request


def issue_token(actor: Actor, vcluster: VCluster, purpose: Purpose) -> tuple[AccessToken, str]:
    """A new token for the acting person on `vcluster`; the plaintext is returned once."""
    access.require(actor.user, "connect", vcluster)
    if vcluster.phase != Phase.READY:
        raise NotReady(f"{vcluster} is {vcluster.phase}; it can be accessed once it is Ready.")
    token = AccessToken.generate()
    expires_at = timezone.now() + timedelta(seconds=settings.VCPORTAL_GATEWAY_TOKEN_TTL)
    with transaction.atomic():
        row = AccessToken.objects.create(
            user=actor.user, vcluster=vcluster, purpose=purpose, prefix=token[:12],
            digest=hash_token(token), expires_at=expires_at,
        )
        record(actor, "vcluster.access.issue", team=vcluster.team, target=vcluster, purpose=purpose,
               token=row.prefix, expires_at=expires_at.isoformat())
    return row, token


def gateway_cluster(portal_url: str, vcluster: VCluster) -> dict:
    """The kubeconfig `cluster` entry: VCPORTAL_GATEWAY_URL (else the portal's URL) and,
    when set, the CA of VCPORTAL_GATEWAY_CA_FILE."""
    base = (settings.VCPORTAL_GATEWAY_URL or portal_url).rstrip("/")
    cluster = {"server": f"{base}/kube/vclusters/{vcluster.pk}"}
    if settings.VCPORTAL_GATEWAY_CA_FILE:
        with open(settings.VCPORTAL_GATEWAY_CA_FILE, "rb") as fh:
            cluster["certificate-authority-data"] = base64.b64encode(fh.read()).decode()
    return cluster


def issue_kubeconfig(actor: Actor, vcluster: VCluster, portal_url: str) -> str:
    """A personal kubeconfig: the gateway's URL for this vcluster and a new token."""
    row, token = issue_token(actor, vcluster, Purpose.KUBECONFIG)
    cluster = f"{vcluster.team.slug}-{vcluster.name}"
    user = f"{actor.user.get_username()}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": gateway_cluster(portal_url, vcluster)}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    return f"# Personal access to {cluster} for {actor.user.get_username()}, valid until " \
           f"{row.expires_at:%Y-%m-%d %H:%M} UTC.\n" + yaml.safe_dump(doc, sort_keys=False)


def issue_exec_credential(actor: Actor, vcluster: VCluster) -> dict:
    """A fresh token as a client-go ExecCredential, for a kubectl credential plugin."""
    row, token = issue_token(actor, vcluster, Purpose.EXEC)
    return {
        "apiVersion": EXEC_CREDENTIAL_API,
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": row.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def revoke_token(actor: Actor, token: AccessToken) -> AccessToken:
    """Revoke a token: its owner, the team's admins and platform admins may."""
    if token.user_id != actor.user.pk:
        access.require_of(actor, "manage_access", token.vcluster)
    with transaction.atomic():
        if AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            record(actor, "vcluster.access.revoke", team=token.vcluster.team, target=token.vcluster,
                   token=token.prefix, owner=token.user.get_username())
    token.refresh_from_db()
    return token


def prune_tokens() -> int:
    """Delete tokens expired or revoked more than VCPORTAL_GATEWAY_TOKEN_RETENTION ago
    (what was done with them stays in AccessRecord and the audit log); how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.VCPORTAL_GATEWAY_TOKEN_RETENTION)
    deleted, _ = AccessToken.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff)).delete()
    return deleted


# The per-request check ---------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """Who a request acts as inside the vcluster, and where that vcluster is."""

    vcluster_id: int
    user_id: int
    username: str
    groups: tuple[str, ...]
    # The vcluster's stored admin kubeconfig, still encrypted: decrypted only when the
    # gateway has no connection for this exact value yet.
    kubeconfig_ciphertext: str

    @property
    def kube_user(self) -> str:
        return USER_PREFIX + self.username


def authorize(token: str, vcluster_id: int) -> Grant:
    """The Grant for a request bearing `token` to vcluster `vcluster_id`, or Refusal.

    One raw SQL query, no ORM, no access.allowed(). It mirrors the VCluster action
    "connect" (VIEW: any role in the vcluster's team, or a platform admin), checked on
    the token's person as they are now; tests/gateway
    (test_the_request_check_agrees_with_the_connect_rule) hold the two together. The
    gateway calls its two halves apart (gateway.grants keeps rows between requests)."""
    return grant_for(lookup(hash_token(token)), vcluster_id)


def grant_for(row: dict | None, vcluster_id: int) -> Grant:
    """The Grant a row of lookup() gives for `vcluster_id`, or Refusal: no query, so a
    row kept from an earlier request is judged again (expiry included) on every use."""
    if row is None:
        raise Refusal(401, f"This token is not valid. {RENEW_HINT}")
    _check_token(row, vcluster_id)
    groups = _groups(row)
    _check_phase(row)
    return Grant(vcluster_id, row["user_id"], row["user__username"], groups, row["kubeconfig_ciphertext"])


LOOKUP_FIELDS = ("user_id", "user__username", "user__is_active", "user__is_staff", "vcluster_id", "expires_at",
                 "revoked_at", "vcluster__name", "vcluster__phase", "vcluster__message", "vcluster__team__slug",
                 "role", "kubeconfig_ciphertext")
_DIGEST_PLACEHOLDER = "digest-placeholder"


@cache
def _lookup_sql() -> tuple[str, tuple]:
    """The lookup's SQL, compiled once: building it with the ORM costs more than running it."""
    role = Membership.objects.filter(team=OuterRef("vcluster__team"), user=OuterRef("user")).values("role")[:1]
    query = (
        AccessToken.objects.filter(digest=_DIGEST_PLACEHOLDER).order_by()
        # Cast: the ciphertext as stored, so nothing is decrypted on the request path.
        .annotate(role=Subquery(role), kubeconfig_ciphertext=Cast("vcluster__kubeconfig", TextField()))
        .values(*LOOKUP_FIELDS)
    )
    return query.query.sql_with_params()


def lookup(digest: str) -> dict | None:
    """What the request check needs about the token with this digest, None if there is none."""
    sql, params = _lookup_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest if p == _DIGEST_PLACEHOLDER else p for p in params])
        row = cursor.fetchone()
    if row is None:
        return None
    found = dict(zip(LOOKUP_FIELDS, row))
    for field in ("expires_at", "revoked_at"):
        found[field] = _aware(found[field])
    return found


def _aware(value: datetime | str | None) -> datetime | None:
    """SQLite gives naive UTC datetimes (or text) where PostgreSQL gives aware ones."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _check_token(row: dict, vcluster_id: int) -> None:
    if row["revoked_at"] is not None:
        raise Refusal(401, f"This token was revoked. {RENEW_HINT}")
    if row["expires_at"] <= timezone.now():
        raise Refusal(401, f"This token expired at {_utc(row['expires_at'])}. {RENEW_HINT}")
    if not row["user__is_active"]:
        raise Refusal(401, "This portal account is disabled.")
    if row["vcluster_id"] != vcluster_id:
        raise Refusal(401, f"This token is for another vcluster. {RENEW_HINT}")


def _groups(row: dict) -> tuple[str, ...]:
    team = row["vcluster__team__slug"]
    roles = [row["role"]] if row["role"] in ROLES else []
    if row["user__is_staff"]:
        roles.append(PLATFORM_ADMIN)
    if not roles:
        raise Refusal(403, f"{row['user__username']} is not a member of team {team}; a team admin can add you again.")
    return (TEAM_GROUP_PREFIX + team, *(role_group(r) for r in roles))


def _check_phase(row: dict) -> None:
    name, phase = row["vcluster__name"], row["vcluster__phase"]
    if PHASES[phase].deletion_requested:
        raise Refusal(404, f"vcluster {name} has been deleted.")
    if phase == Phase.FAILED:
        raise Refusal(503, f"vcluster {name} failed: {row['vcluster__message'] or 'no message'}. "
                           "A member can retry it in the portal.")
    if phase != Phase.READY:
        raise Refusal(503, f"vcluster {name} is not ready yet ({phase}); try again in a minute.")
    if not row["kubeconfig_ciphertext"]:
        raise Refusal(503, f"vcluster {name} has no credentials yet; try again in a minute.")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
