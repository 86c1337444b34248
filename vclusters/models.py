import re

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from accounts import resources
from accounts.access import MANAGE, PLATFORM, VIEW, WRITE, RestrictedQuerySet
from accounts.models import Team
from portal.fields import EncryptedTextField

from .lifecycle import COUNTS_AGAINST_QUOTA, INITIAL, PHASES, RETRYABLE, EventKind, Phase, PhaseInfo

NAME_MAX_LENGTH = 40
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
validate_name = RegexValidator(
    re.compile(rf"\A{NAME_RE.pattern}\Z"),
    "Use lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label).",
    code="invalid_name",
)


class VClusterQuerySet(RestrictedQuerySet):
    team_lookup = "team"
    actions = {
        "view": VIEW,  # the vcluster, its steps, events and placement
        "change": WRITE,  # retry
        "delete": WRITE,
        # Through the gateway, as oneself: a personal kubeconfig or exec credential. The
        # vcluster's RBAC gives each role its rights inside (viewers: read-only).
        "connect": VIEW,
        "manage_access": MANAGE,  # see and revoke other people's gateway tokens
        # The stored system:masters kubeconfig, unattributable: break-glass only.
        "download_admin_kubeconfig": PLATFORM,
    }

    def counting_against_quota(self):
        return self.filter(phase__in=COUNTS_AGAINST_QUOTA)


class VCluster(models.Model):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="vclusters")
    name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[validate_name])
    kubernetes_version = models.CharField(max_length=20)
    cpu_millicores = models.BigIntegerField()
    memory_bytes = models.BigIntegerField()
    storage_bytes = models.BigIntegerField()
    pods = models.BigIntegerField()
    phase = models.CharField(max_length=12, choices=Phase.choices, default=INITIAL, db_index=True)
    message = models.TextField(blank=True)
    # Written by provisioning once the vcluster is Ready; never logged.
    kubeconfig = EncryptedTextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = VClusterQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], condition=~Q(phase="Deleted"), name="unique_live_vcluster_name_per_team"
            ),
        ]
        indexes = [models.Index(fields=["team", "phase"])]

    def __str__(self):
        return self.name

    @property
    def lifecycle(self) -> PhaseInfo:
        """What its phase means (vclusters.lifecycle), for pages: badge, in_progress, …"""
        return PHASES[self.phase]

    @property
    def failed(self) -> bool:
        """Its work gave up and waits for a person (Retry)."""
        return self.phase in RETRYABLE

    @property
    def deleted(self) -> bool:
        return self.phase == Phase.DELETED

    def requested(self) -> dict[str, str | int]:
        return {r.name: r.format(getattr(self, r.field)) for r in resources.RESOURCES}


class StepStatus(models.TextChoices):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class VClusterStep(models.Model):
    """One step of provisioning or teardown, shown live on the vcluster page."""

    vcluster = models.ForeignKey(VCluster, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.vcluster}: {self.name} ({self.status})"


class VClusterEvent(models.Model):
    """Something that happened to a vcluster outside its steps: a retry (written by
    vclusters), a repair or a failure (written by provisioning)."""

    vcluster = models.ForeignKey(VCluster, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.vcluster}: {self.kind}: {self.message}"
