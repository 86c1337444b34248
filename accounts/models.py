import hashlib
import secrets

from django.conf import settings
from django.db import models

from . import extensions, resources
from .access import MANAGE, OWN, PLATFORM, VIEW, WRITE, RestrictedQuerySet, Role


class TeamQuerySet(RestrictedQuerySet):
    team_lookup = ""
    actions = {
        "view": VIEW,  # the team, its quota, members and vclusters
        "create_vcluster": WRITE,
        "manage": MANAGE,  # add members, change roles, remove members
        "add": PLATFORM,  # create teams
        "change": PLATFORM,  # quota and pod security
    }


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Quota: what all of the team's vclusters (except Deleted ones) may request together.
    max_vclusters = models.PositiveIntegerField(default=3)
    cpu_millicores = models.BigIntegerField(default=8_000)
    memory_bytes = models.BigIntegerField(default=16 * 2**30)
    storage_bytes = models.BigIntegerField(default=200 * 2**30)
    pods = models.BigIntegerField(default=500)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def quota(self) -> dict[str, int]:
        """Limits keyed by model field, max_vclusters included."""
        limits = {r.field: getattr(self, r.field) for r in resources.RESOURCES}
        return {"max_vclusters": self.max_vclusters, **limits}

    def usage(self) -> dict[str, int]:
        """What the team's vclusters hold now, keyed like quota()."""
        return extensions.usage_by_team([self.pk])[self.pk]

    def headroom(self, used: dict[str, int] | None = None) -> dict[str, int]:
        """What is left of the quota for new vclusters, keyed like quota()."""
        used = self.usage() if used is None else used
        return {field: max(limit - used[field], 0) for field, limit in self.quota().items()}


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="unique_membership")]
        ordering = ["user__username"]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"


TOKEN_PREFIX = "vcp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(RestrictedQuerySet):
    owner_lookup = "user"
    actions = {"view": OWN, "delete": OWN}  # your own tokens only, platform admins included

    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A personal API token. Only its sha256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters, so a user can tell tokens apart without the secret.
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AuditEventQuerySet(RestrictedQuerySet):
    team_lookup = "team"
    actions = {"view": MANAGE}  # team admins: their teams' events; platform admins: all


class AuditEvent(models.Model):
    """Who did what, when, from which address. Written by the service functions in
    the same transaction as the change it records."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept so the log still names the actor after the account is deleted.
    actor_username = models.CharField(max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=50, db_index=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    target_type = models.CharField(max_length=30, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.target_name}"
