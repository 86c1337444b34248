import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Subquery

from vclusters import resources


class Role(models.TextChoices):
    ADMIN = "admin", "Team admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


WRITE_ROLES = {Role.ADMIN, Role.MEMBER}


def my_role_subquery(user):
    """The acting user's role in each team, as an annotation."""
    memberships = Membership.objects.filter(team=OuterRef("pk"), user=user)
    return Subquery(memberships.values("role")[:1])


class TeamQuerySet(models.QuerySet):
    def for_user(self, user):
        """The only way pages and the API decide which teams a user can see."""
        if not user.is_authenticated:
            return self.none()
        teams = self.annotate(my_role=my_role_subquery(user))
        return teams if user.is_staff else teams.filter(memberships__user=user)


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


class ApiTokenQuerySet(models.QuerySet):
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

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.target_name}"
