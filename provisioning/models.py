"""Where vclusters run: host clusters, each vcluster's placement on one, and each
team's provisioning policy. (A vcluster's steps and events are vclusters' models:
vclusters writes them too.)"""

import uuid

from django.db import models
from django.db.models import Count, Q

from accounts.access import PLATFORM, RestrictedQuerySet
from accounts.models import Team
from portal.fields import EncryptedTextField
from syncer.policy import TenantPolicy
from vclusters.lifecycle import COUNTS_AGAINST_QUOTA
from vclusters.models import VCluster

from . import runtimes
from .manifests import INSTALLATION_TOKEN_LENGTH


class HostClusterQuerySet(RestrictedQuerySet):
    # Platform infrastructure: no team role sees or changes host clusters.
    actions = {"view": PLATFORM, "add": PLATFORM, "change": PLATFORM, "delete": PLATFORM}

    def with_load(self):
        """Annotated with `load`: how many live vclusters are placed on each."""
        live = Q(placements__vcluster__phase__in=COUNTS_AGAINST_QUOTA)
        return self.annotate(load=Count("placements", filter=live))


class Access(models.TextChoices):
    """How tenants reach a `kubernetes`-runtime vcluster's API server from outside the host."""

    NODEPORT = "nodeport", "NodePort"
    LOADBALANCER = "loadbalancer", "LoadBalancer"
    INGRESS = "ingress", "Ingress (TLS passthrough)"
    # The portal reaches the Service's own address and tenants come through the gateway:
    # for a portal running in (or routed into) the host cluster.
    CLUSTERIP = "clusterip", "ClusterIP (through the portal's gateway)"


class HostCluster(models.Model):
    """A Kubernetes cluster whose namespaces hold vclusters' workloads."""

    name = models.SlugField(max_length=50, unique=True)
    # Admin credentials for the host; encrypted at rest, never logged or returned.
    # Empty when in_cluster.
    kubeconfig = EncryptedTextField(blank=True)
    in_cluster = models.BooleanField(
        default=False, help_text="The cluster the portal runs in, reached with the portal's own ServiceAccount "
                                 "(no kubeconfig is stored).")
    enabled = models.BooleanField(default=True, help_text="New vclusters are placed only on enabled host clusters.")
    capacity_notes = models.TextField(blank=True)
    # Teams that may use this host cluster; none means every team.
    teams = models.ManyToManyField(Team, blank=True, related_name="host_clusters")
    # What tenants may ask of this host beyond the safe default (syncer.policy);
    # validated by provisioning.hostclusters.services before it is saved.
    tenant_policy = models.JSONField(default=dict, blank=True)
    # Placements copy the runtime, so changing it affects new vclusters only.
    runtime = models.CharField(max_length=20, choices=runtimes.CHOICES, default=runtimes.DEFAULT)
    # The control plane's image; blank: VCPORTAL_RUNTIME_IMAGE, else the one `make images` built.
    runtime_image = models.CharField(max_length=300, blank=True)
    access = models.CharField(max_length=20, choices=Access.choices, default=Access.NODEPORT)
    # nodeport: the node address (IP or DNS name) put in kubeconfigs; ingress: the DNS
    # domain under which each vcluster gets a name; loadbalancer: unused (the LB's address).
    access_address = models.CharField(max_length=253, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HostClusterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def policy(self) -> TenantPolicy:
        return TenantPolicy.from_dict(self.tenant_policy)


class PodSecurity(models.TextChoices):
    BASELINE = "baseline", "Baseline"
    RESTRICTED = "restricted", "Restricted"


class TeamPolicy(models.Model):
    """Per-team provisioning settings; a team without a row gets the defaults."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="provisioning_policy")
    pod_security = models.CharField(max_length=12, choices=PodSecurity.choices, default=PodSecurity.BASELINE)

    def __str__(self):
        return f"{self.team}: {self.pod_security}"


class Placement(models.Model):
    """Where one vcluster lives; written once, by the first provisioning step."""

    vcluster = models.OneToOneField(VCluster, on_delete=models.CASCADE, related_name="placement")
    # Set only while the host cluster is registered: one can be removed once no live
    # vcluster is placed on it (provisioning.hostclusters.services.delete_host_cluster), and the
    # placements of Deleted vclusters stay for their teardown receipts.
    host_cluster = models.ForeignKey(HostCluster, null=True, on_delete=models.SET_NULL, related_name="placements")
    host_namespace = models.CharField(max_length=63)
    runtime = models.CharField(max_length=20, choices=runtimes.CHOICES, default=runtimes.LOCAL)
    # What the `kubernetes` runtime must keep across pods and Services: the vcluster's CA
    # and service-account keys, its Service's address and node port (JSON). Encrypted.
    control_plane_state = EncryptedTextField(blank=True, default="")
    # What teardown removed and checked; shown on the vcluster page once Deleted.
    receipt = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One host namespace, one vcluster: until its teardown is finished (the
            # receipt is written), no other placement may name it.
            models.UniqueConstraint(
                fields=["host_cluster", "host_namespace"], condition=Q(receipt__isnull=True),
                name="one_live_placement_per_host_namespace",
            ),
        ]

    def __str__(self):
        return f"{self.vcluster} on {self.host_cluster}/{self.host_namespace}"


class Installation(models.Model):
    """This portal, as the host clusters it manages know it: one row, written once
    (provisioning.installation)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    # The vcportal.io/installation label value of every host object this portal writes.
    name = models.CharField(max_length=40)
    # Short and unique among the portals on a host: host namespaces are vc-<token>-<id>-…
    token = models.CharField(max_length=INSTALLATION_TOKEN_LENGTH)
    # The identity a host's record of this portal names; another database has another.
    uid = models.UUIDField(default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="one_installation")]

    def __str__(self):
        return self.name
