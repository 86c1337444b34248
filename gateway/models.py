"""What the gateway keeps: personal access tokens for vclusters, and what was done
through them (mutating requests listed, reads counted, the last request time)."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from vclusters.models import VCluster

TOKEN_PREFIX = "vck_"


class Purpose(models.TextChoices):
    KUBECONFIG = "kubeconfig", "Downloaded kubeconfig"
    EXEC = "exec", "Exec credential plugin"


class AccessTokenQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class AccessToken(models.Model):
    """A person's bearer token for one vcluster, valid until it expires or is revoked.
    Only its sha256 is stored. What it allows is decided on every request from the
    person's membership at that moment, never from the token."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vcluster_tokens")
    vcluster = models.ForeignKey(VCluster, on_delete=models.CASCADE, related_name="access_tokens")
    purpose = models.CharField(max_length=12, choices=Purpose.choices, default=Purpose.KUBECONFIG)
    # The first characters, so a person can tell tokens apart without the secret.
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["vcluster", "user"])]

    def __str__(self):
        return f"{self.prefix}… ({self.user} on {self.vcluster})"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AccessRecord(models.Model):
    """One mutating request through the gateway: who did what to which object."""

    vcluster = models.ForeignKey(VCluster, on_delete=models.CASCADE, related_name="access_records")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept so the record still names the person after the account is deleted.
    username = models.CharField(max_length=150)
    at = models.DateTimeField()
    verb = models.CharField(max_length=20)
    api_group = models.CharField(max_length=253, blank=True)
    resource = models.CharField(max_length=253, blank=True)
    subresource = models.CharField(max_length=63, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253, blank=True)
    # The path, for requests that name no resource (e.g. a non-resource URL).
    path = models.CharField(max_length=1000, blank=True)
    code = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["vcluster", "-at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.verb} {self.resource} {self.name} → {self.code}"


class RequestCount(models.Model):
    """Requests through the gateway per vcluster and UTC day: reads are counted, not listed."""

    vcluster = models.ForeignKey(VCluster, on_delete=models.CASCADE, related_name="request_counts")
    day = models.DateField()
    reads = models.BigIntegerField(default=0)
    writes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["vcluster", "day"], name="unique_request_count_per_day")]


class Activity(models.Model):
    """The last request through the gateway: the vcluster's activity (for sleep mode)."""

    vcluster = models.OneToOneField(VCluster, on_delete=models.CASCADE, primary_key=True, related_name="activity")
    last_request_at = models.DateTimeField()
    last_username = models.CharField(max_length=150, blank=True)

    def __str__(self):
        return f"{self.vcluster}: {self.last_request_at}"
