"""The GitOps controller: keeps VirtualCluster objects on the management cluster and
portal vclusters in step, one pass at a time (gitops.tasks runs a pass every
VCPORTAL_GITOPS_INTERVAL seconds from Celery beat).

Each pass lists every VirtualCluster and every mapped namespace once, then for each
object:

- new, in a namespace labelled vcportal.io/team=<slug>: create_vcluster() as the actor
  "gitops:<namespace>/<name>" (quota, names, versions, audit: the portal's rules), and
  remember the object's uid as its owner (VirtualClusterBinding), then add a finalizer;
  a refusal (unmapped namespace, quota, bad spec) is written to status and tried again
  next pass, so it clears as soon as the namespace, spec or quota allows;
- owning a vcluster: status mirrors its phase, steps and message; once Ready its
  kubeconfig goes into a Secret the object owns; spec fields that cannot change yet
  are refused in status (SpecAccepted=False, ImmutableField);
- being deleted: delete_vcluster(), and the finalizer stays until the vcluster is
  Deleted, then the Secret and the finalizer go;
- owning a vcluster deleted in the portal: status says so (DeletedInPortal), and it
  is not recreated, since its uid is bound: delete and re-apply to get a new one.

A binding whose object is gone from its cluster (its finalizer was removed by hand)
has its vcluster torn down. One object's error is logged and does not stop the pass.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import resources
from accounts.models import Team
from portal.errors import QuotaExceeded
from portal.kubeapi import describe, is_transient
from provisioning import pipeline
from provisioning.models import HostCluster
from vclusters import services
from vclusters.lifecycle import DELETABLE, Phase
from vclusters.models import StepStatus, VCluster

from . import crd, status
from .kube import ManagementCluster, SecretConflict
from .models import VirtualClusterBinding, actor_for

logger = logging.getLogger(__name__)

# Where each spec error of create_vcluster points in the object.
OBJECT_FIELDS = {"name": "metadata.name", **{f: f"spec.{k}" for k, f in status.SERVICE_FIELDS.items()}}


def reconcile(cluster_name: str) -> None:
    """One pass over the management cluster registered as the host cluster `cluster_name`."""
    host = HostCluster.objects.filter(name=cluster_name).first()
    if host is None:
        logger.debug("gitops: no host cluster %r is registered; nothing to do", cluster_name)
        return
    cluster = ManagementCluster(host)
    cluster.ensure_crd()
    cluster_uid = cluster.identity()
    teams = cluster.namespace_teams()
    bindings = {
        b.uid: b for b in VirtualClusterBinding.objects.filter(cluster=cluster_name, cluster_uid=cluster_uid)
        .select_related("vcluster__team")
    }
    for obj in cluster.virtual_clusters():
        object_pass = ObjectPass(cluster, cluster_name, cluster_uid, obj)
        try:
            object_pass.run(teams.get(object_pass.namespace), bindings.pop(object_pass.uid, None))
        except Exception as exc:  # one object's trouble must not stop the others
            expected = is_transient(exc) or getattr(exc, "status", None) == 404  # busy, or deleted meanwhile
            log = logger.info if expected else logger.exception
            log("gitops: %s/%s: %s (tried again next pass)",
                object_pass.namespace, object_pass.name, describe(exc))
    for binding in bindings.values():
        _object_gone(binding)


class ObjectPass:
    """One object's reconcile."""

    def __init__(self, cluster: ManagementCluster, cluster_name: str, cluster_uid: str, obj: dict):
        self.cluster, self.cluster_name, self.cluster_uid, self.obj = cluster, cluster_name, cluster_uid, obj
        meta = obj["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.spec = obj.get("spec") or {}

    @property
    def actor(self):
        return actor_for(self.namespace, self.name)

    def run(self, team_slug: str | None, binding: VirtualClusterBinding | None) -> None:
        if self.obj["metadata"].get("deletionTimestamp"):
            self._finalize(binding)
            return
        if binding is None:
            binding, refusal = self._create(team_slug)
            if refusal:
                self._write(refusal)
                return
        self._write(self._observe(binding.vcluster))

    def _create(self, team_slug: str | None) -> tuple[VirtualClusterBinding | None, status.Observed | None]:
        team = Team.objects.filter(slug=team_slug).first() if team_slug else None
        if team is None:
            return None, status.refusal("NamespaceNotMapped", _unmapped_message(self.namespace, team_slug))
        try:
            with transaction.atomic():
                vcluster = services.create_vcluster(self.actor, team, name=self.name,
                                                    **status.service_fields(self.spec))
                binding = VirtualClusterBinding.objects.create(
                    cluster=self.cluster_name, cluster_uid=self.cluster_uid, namespace=self.namespace,
                    name=self.name, uid=self.uid, vcluster=vcluster,
                )
        except QuotaExceeded as exc:
            return None, status.refusal("QuotaExceeded", " ".join(exc.messages))
        except ValidationError as exc:
            return None, status.refusal("Invalid", _field_errors(exc), spec_invalid=True)
        logger.info("gitops: %s/%s created vcluster %s for team %s", self.namespace, self.name, vcluster.pk, team)
        return binding, None

    def _observe(self, vcluster: VCluster) -> status.Observed:
        vcluster.refresh_from_db()
        requested = {r.field: getattr(vcluster, r.field) for r in resources.RESOURCES}
        problems = status.immutable_changes(self.spec, vcluster.kubernetes_version, requested)
        secret, secret_error = "", ""
        if vcluster.phase == Phase.READY:
            try:
                secret = self.cluster.write_kubeconfig(self.obj, vcluster.kubeconfig)
            except SecretConflict as exc:
                secret_error = str(exc)
        elif vcluster.lifecycle.deletion_requested:
            self.cluster.delete_kubeconfig(self.obj)
        if vcluster.phase != Phase.DELETED:
            self.cluster.set_finalizer(self.obj, present=True)
        done, total, running = _steps(vcluster)
        message = vcluster.message or (f"{running} ({done} of {total} steps done)." if running else "")
        return status.of_vcluster(vcluster.pk, vcluster.phase, message, (done, total), secret, problems, secret_error)

    def _finalize(self, binding: VirtualClusterBinding | None) -> None:
        vcluster = binding.vcluster if binding else None
        if vcluster is not None and _may_request_deletion(vcluster):
            services.delete_vcluster(self.actor, vcluster)
        if vcluster is None or vcluster.phase == Phase.DELETED:
            self.cluster.delete_kubeconfig(self.obj)
            self.cluster.set_finalizer(self.obj, present=False)
            if binding:
                binding.delete()
            return
        self._write(self._observe(vcluster))

    def _write(self, observed: status.Observed) -> None:
        previous = self.obj.get("status") or {}
        now = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        new = status.build(observed, self.obj["metadata"].get("generation", 1), previous, now)
        if new != previous:
            self.cluster.write_status(self.obj, new)


def _object_gone(binding: VirtualClusterBinding) -> None:
    """The owning object disappeared without its finalizer running: tear down."""
    vcluster = binding.vcluster
    if _may_request_deletion(vcluster):
        logger.warning("gitops: %s is gone; tearing its vcluster %s down", binding, vcluster.pk)
        services.delete_vcluster(actor_for(binding.namespace, binding.name), vcluster)
    elif vcluster.phase == Phase.DELETED:
        binding.delete()


def _may_request_deletion(vcluster: VCluster) -> bool:
    """Once only: a teardown that gave up (DeleteFailed) waits for a person's Retry, as it
    does for a vcluster deleted in the portal, instead of being retried every pass."""
    return vcluster.phase in DELETABLE and not vcluster.lifecycle.deletion_requested


def _steps(vcluster: VCluster) -> tuple[int, int, str]:
    """(steps done, steps in all, the step running now or "") of the work in progress:
    teardown once the vcluster's deletion was asked for, provisioning before."""
    steps = pipeline.TEARDOWN if vcluster.lifecycle.deletion_requested else pipeline.PROVISION
    names = [s.name for s in steps]
    rows = dict(vcluster.steps.filter(name__in=names).values_list("name", "status"))
    done = sum(1 for name in names if rows.get(name) == StepStatus.SUCCEEDED)
    running = next((name for name in names if rows.get(name) == StepStatus.RUNNING), "")
    return done, len(names), running


def _unmapped_message(namespace: str, team_slug: str | None) -> str:
    if team_slug:
        return f"Namespace {namespace} is labelled {crd.TEAM_LABEL}={team_slug}, but the portal has no team {team_slug}."
    return (f"Namespace {namespace} is not mapped to a team: a platform admin maps it with "
            f"`kubectl label namespace {namespace} {crd.TEAM_LABEL}=<team slug>`.")


def _field_errors(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return " ".join(f"{OBJECT_FIELDS.get(field, field)}: {' '.join(messages)}"
                    for field, messages in exc.message_dict.items())
