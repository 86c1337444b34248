"""Provisioning, teardown and repair of one vcluster, as idempotent steps.

Every step *ensures* a piece of the desired state and returns what it had to change,
so running the pipeline again after a crash, a retry or a hand edit on the host
repairs what is missing instead of replaying what was done. Each run of a step is
recorded on the vcluster (VClusterStep) for the UI and the API to show live.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import yaml
from django.conf import settings
from kubernetes import client
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import resources
from portal import metrics
from portal.errors import is_database_unavailable
from portal.kubeapi import describe, is_transient, read_or_none

from controlplane import addons, images
from controlplane.components import CLUSTER_DOMAIN
from syncer import names
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from syncer.kinds.ingresses import LABEL_HOLDER as CLAIM_HOLDER
from syncer.policy import TenantPolicy
from syncer.rbac import token_kubeconfig
from vclusters import lifecycle
from vclusters.lifecycle import Event, EventKind, Phase
from vclusters.models import StepStatus, VCluster, VClusterEvent, VClusterStep

from . import installation, manifests, rbac, runtimes
from .hostclusters.placement import NoHostCluster, choose_for
from .hostkube import HostKube
from .models import Installation, Placement, PodSecurity, TeamPolicy
from .runtimes import RuntimeFailure, RuntimeNotReady, VClusterRef, syncer_name

logger = logging.getLogger(__name__)

SYNCER_TOKEN_SECONDS = 365 * 24 * 3600


class Transient(Exception):
    """The step hit an error worth retrying later (the task retries with backoff)."""


class Permanent(Exception):
    """The step cannot succeed without a change by someone; the vcluster is Failed."""


@dataclass
class Context:
    vcluster: VCluster
    changes: list[str] = field(default_factory=list)

    @property
    def placement(self) -> Placement:
        return self.vcluster.placement

    @cached_property
    def host(self) -> HostKube:
        return HostKube.of(self.placement.host_cluster)

    @cached_property
    def vcluster_api(self) -> HostKube:
        """The vcluster's own API with its admin kubeconfig: only for steps after Kubeconfig."""
        return HostKube(self.vcluster.kubeconfig)

    @property
    def ref(self) -> VClusterRef:
        vc = self.vcluster
        return VClusterRef(vc.pk, vc.name, self.placement.host_namespace, vc.kubernetes_version, self.labels)

    @property
    def policy(self) -> TenantPolicy:
        """What the host cluster's tenant policy lets this vcluster's team do: the syncer's
        rules, in every runtime call that writes its config."""
        return self.placement.host_cluster.policy().for_team(self.vcluster.team.slug)

    @cached_property
    def runtime(self) -> runtimes.ControlPlaneRuntime:
        """The runtime the vcluster was placed with, keeping its state in the placement."""
        return runtimes.create(self.placement.runtime, self.placement.host_cluster, PlacementState(self.vcluster.pk))

    @cached_property
    def installation(self) -> Installation:
        return installation.current()

    @property
    def labels(self) -> dict[str, str]:
        return manifests.labels(self.vcluster.pk, self.vcluster.team.slug, self.installation.name)

    def claim_host(self) -> None:
        """Touch a host only while this portal holds its name there: another portal's
        objects of the same name and vcluster id would pass for ours."""
        try:
            installation.claim(self.host, self.placement.host_cluster.name)
        except installation.Conflict as exc:
            raise Permanent(str(exc)) from None

    def ownership_conflict(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> str | None:
        """Why the host object is not this vcluster's to delete; None if it is ours or gone."""
        existing = self.host.labels_of(api_version, kind, name, namespace)
        return None if existing is None else manifests.ownership_conflict(existing, self.labels)

    def apply(self, manifest: dict) -> bool:
        """Apply `manifest` to the host; True (and noted in `changes`) if that changed it."""
        changed = self.host.apply(manifest)
        if changed:
            meta = manifest["metadata"]
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            self.changes.append(f"{manifest['kind']} {where}{meta['name']}")
        return changed


class PlacementState:
    """A runtime's StateStore: its placement's control_plane_state, encrypted at rest."""

    def __init__(self, vcluster_id: int):
        self.rows = Placement.objects.filter(vcluster_id=vcluster_id)

    def load(self) -> dict:
        text = self.rows.values_list("control_plane_state", flat=True).first()
        return json.loads(text) if text else {}

    def save(self, state: dict) -> None:
        self.rows.update(control_plane_state=json.dumps(state))

    def clear(self) -> bool:
        return bool(self.rows.exclude(control_plane_state="").update(control_plane_state=""))


# Provisioning steps -----------------------------------------------------------
def ensure_namespace(ctx: Context) -> None:
    _ensure_placement(ctx.vcluster, ctx.installation.token)
    ctx.claim_host()
    policy = TeamPolicy.objects.filter(team=ctx.vcluster.team).first()
    level = policy.pod_security if policy else PodSecurity.BASELINE
    ctx.apply(manifests.namespace(ctx.placement.host_namespace, ctx.labels, level))
    if ctx.placement.host_cluster.in_cluster and settings.VCPORTAL_NAMESPACE_ROLE:
        # The portal holds no rights inside namespaces until it binds itself this role in
        # its own (docs/helm.md): it cannot read Secrets of namespaces it did not create.
        if ctx.apply(manifests.portal_binding(ctx.placement.host_namespace, ctx.labels,
                                              settings.VCPORTAL_NAMESPACE_ROLE, settings.VCPORTAL_SERVICE_ACCOUNT)):
            _wait_for_own_rights(ctx, RIGHTS_TIMEOUT)  # a new binding; a repair that finds it in place asks nothing


# Seconds the API server's authorizer may take to see the portal's new RoleBinding.
RIGHTS_TIMEOUT = 10


def _wait_for_own_rights(ctx: Context, timeout: float) -> None:
    """Done when the binding is in force: the API server authorizes from a cache of RBAC
    objects, and the next step, right after the binding, was refused (403, a permanent
    failure) on the first vcluster after an install."""
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(namespace=ctx.placement.host_namespace, verb="create",
                                                        resource="resourcequotas")))
    authorization = client.AuthorizationV1Api(ctx.host.api)
    deadline = time.monotonic() + timeout
    while not authorization.create_self_subject_access_review(review).status.allowed:
        if time.monotonic() > deadline:
            raise Transient(f"the portal's rights in {ctx.placement.host_namespace} are not in force after {timeout}s")
        time.sleep(0.1)


def _ensure_placement(vc: VCluster, token: str) -> None:
    if Placement.objects.filter(vcluster=vc).exists():
        return
    try:
        host = choose_for(vc.team)
    except NoHostCluster as exc:
        raise Permanent(str(exc)) from None
    namespace = manifests.host_namespace_name(token, vc.pk, vc.team.slug, vc.name)
    try:
        with transaction.atomic():
            Placement.objects.create(vcluster=vc, host_cluster=host, host_namespace=namespace, runtime=host.runtime)
    except IntegrityError:
        raise Permanent(f"host namespace {namespace} on {host} is already placed for another vcluster") from None
    vc.refresh_from_db()


def ensure_quota(ctx: Context) -> None:
    vc, ns = ctx.vcluster, ctx.placement.host_namespace
    team_share = {r.field: getattr(vc, r.field) for r in resources.RESOURCES}
    total = manifests.add_shares(team_share, manifests.CLUSTER_DNS_SHARE, ctx.runtime.quota_share())
    ctx.apply(manifests.resource_quota(ns, ctx.labels, **total))
    ctx.apply(manifests.limit_range(ns, ctx.labels))


def ensure_network_policies(ctx: Context) -> None:
    for policy in manifests.network_policies(ctx.placement.host_namespace, ctx.labels):
        ctx.apply(policy)


def ensure_syncer_identity(ctx: Context) -> None:
    for manifest in manifests.syncer_identity(ctx.placement.host_namespace, ctx.labels):
        ctx.apply(manifest)
    _ensure_claims_namespace(ctx)


def _ensure_claims_namespace(ctx: Context) -> None:
    """The syncer's right to claim Ingress host names, in the namespace of claims. That
    namespace and its admission policy are shared: made once by whoever comes first (on
    the portal's own cluster, the Helm chart: a portal there may not make them)."""
    if not ctx.placement.host_cluster.in_cluster:
        for manifest in manifests.claims_setup():
            if ctx.host.ensure(manifest):
                ctx.changes.append(f"{manifest['kind']} {manifest['metadata']['name']}")
    elif not ctx.host.exists("v1", "Namespace", CLAIMS_NAMESPACE):
        ctx.changes.append(f"no namespace {CLAIMS_NAMESPACE} (hostCluster.ingressHostNames): Ingresses are refused")
        return
    for manifest in manifests.host_name_claims(ctx.placement.host_namespace, ctx.labels):
        ctx.apply(manifest)


def ensure_control_plane(ctx: Context) -> None:
    ctx.changes.extend(ctx.runtime.ensure_control_plane(ctx.ref, ctx.policy))
    address, port = ctx.runtime.pod_api_endpoint(ctx.ref)
    ctx.apply(manifests.api_access_policy(ctx.placement.host_namespace, ctx.labels, address, port))


def ensure_syncer(ctx: Context) -> None:
    def host_kubeconfig() -> str:
        server, ca_pem = ctx.host.server()
        return token_kubeconfig(
            ctx.host.api, server, ca_pem.encode(), ctx.placement.host_namespace,
            manifests.SYNCER, seconds=SYNCER_TOKEN_SECONDS,
        )

    ctx.changes.extend(ctx.runtime.ensure_syncer(ctx.ref, host_kubeconfig, ctx.policy))
    _wait_syncer_ready(ctx, settings.VCPORTAL_CONTROL_PLANE_START_TIMEOUT)


def _wait_syncer_ready(ctx: Context, timeout: float) -> None:
    """Done when the syncer has listed both clusters and syncs, not when it is spawned."""
    deadline = time.monotonic() + timeout
    while not ctx.runtime.syncer_running(ctx.ref):
        if time.monotonic() > deadline:
            raise Transient(f"the syncer is not ready after {timeout}s")
        time.sleep(0.2)


def ensure_kubeconfig(ctx: Context) -> None:
    """Issue the admin kubeconfig, or issue it again if it no longer names the API
    server's address (a restarted control plane whose port was taken meanwhile)."""
    vc = ctx.vcluster
    if vc.kubeconfig and _server_of(vc.kubeconfig) == ctx.runtime.server(ctx.ref):
        return
    vc.kubeconfig = ctx.runtime.admin_kubeconfig(ctx.ref)
    VCluster.objects.filter(pk=vc.pk).update(kubeconfig=vc.kubeconfig)
    ctx.changes.append("admin kubeconfig issued")


def ensure_cluster_dns(ctx: Context) -> None:
    """CoreDNS inside the vcluster, a tenant workload as in vcluster: it answers for the
    vcluster's Services from the vcluster's API, and its Service gets the host's
    ClusterIP from the syncer. Once it has, the syncer points the resolver of every pod
    it creates there (it reads the address itself; pods created before keep the host's).
    Done when that has happened."""
    kube = ctx.vcluster_api
    for manifest in addons.coredns_manifests(_cluster_dns_image(), CLUSTER_DOMAIN):
        if kube.apply(manifest):
            ctx.changes.append(f"{manifest['kind']} {manifest['metadata']['name']} in the vcluster")
    deadline = time.monotonic() + settings.VCPORTAL_CONTROL_PLANE_START_TIMEOUT
    while _cluster_dns_ip(ctx) is None:
        if time.monotonic() > deadline:
            raise Transient("the vcluster's DNS Service has not got its host address yet")
        time.sleep(0.2)


def _cluster_dns_image() -> str:
    try:
        return settings.VCPORTAL_CLUSTER_DNS_IMAGE or images.reference("coredns")
    except images.ImagesMissing as exc:
        raise Permanent(f"{exc} Or set VCPORTAL_CLUSTER_DNS_IMAGE to a CoreDNS image the host can pull.") from None


def _cluster_dns_ip(ctx: Context) -> str | None:
    """The vcluster's `kube-dns` address once it is the host's (the syncer's webhook gives
    it at creation, or the syncer recreates the Service with it); None before that, or
    before there is a vcluster."""
    if not ctx.vcluster.kubeconfig:
        return None
    virtual = _cluster_ip(ctx.vcluster_api, "kube-dns", "kube-system")
    host_copy = _cluster_ip(ctx.host, names.host_name("kube-dns", "kube-system", syncer_name(ctx.ref)),
                            ctx.placement.host_namespace)
    return virtual if virtual and virtual == host_copy else None


def _cluster_ip(kube: HostKube, name: str, namespace: str) -> str | None:
    service = read_or_none(kube.core.read_namespaced_service, name, namespace)
    return service.spec.cluster_ip if service else None


def ensure_access_bindings(ctx: Context) -> None:
    """Bind the portal's role groups inside the vcluster (rbac): what people reaching
    it through the gateway may do there."""
    try:
        ctx.changes.extend(rbac.ensure_access_bindings(ctx.vcluster.kubeconfig))
    except rbac.ViewRoleNotReady as exc:
        raise Transient(str(exc)) from None


def _server_of(kubeconfig: str) -> str | None:
    try:
        return yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


@dataclass(frozen=True)
class Step:
    name: str
    ensure: Callable[[Context], None]


PROVISION = (
    Step("Host namespace", ensure_namespace),
    Step("Quota and limit range", ensure_quota),
    Step("Network policies", ensure_network_policies),
    Step("Syncer identity", ensure_syncer_identity),
    Step("Control plane", ensure_control_plane),
    Step("Kubeconfig", ensure_kubeconfig),
    Step("Syncer", ensure_syncer),
    Step("Cluster DNS", ensure_cluster_dns),
    Step("Access bindings", ensure_access_bindings),
)


# Teardown steps ---------------------------------------------------------------
def stop_runtime(ctx: Context) -> None:
    ctx.claim_host()
    ctx.changes.extend(ctx.runtime.destroy(ctx.ref))


def delete_namespace(ctx: Context) -> None:
    """Ask the host to delete the namespace, unless it is not this vcluster's (provisioning
    refused to adopt it): then it and everything in it stays as it is. Asked before the
    runtime stops because the host's namespace controller waits 5 s after a deletion
    (for every API server to see it) before it empties the namespace: the runtime stops
    meanwhile. A terminating namespace takes no new object, so the syncer, still
    running, can add nothing to it."""
    ns = ctx.placement.host_namespace
    if _left_alone(ctx, ns):
        return
    if ctx.host.delete("v1", "Namespace", ns):  # first, so that no controller recreates a pod deleted here
        ctx.changes.append(f"Namespace {ns} and everything in it")
        if pods := ctx.host.delete_pods_now(ns):
            ctx.changes.append(f"{pods} pods, without grace period")


def wait_namespace_gone(ctx: Context) -> None:
    ns = ctx.placement.host_namespace
    if _left_alone(ctx, ns):
        return
    if not ctx.host.wait_namespace_gone(ns, settings.VCPORTAL_NAMESPACE_DELETE_TIMEOUT):
        raise Transient(f"namespace {ns} is still terminating")
    ctx.changes.append(f"Namespace {ns} no longer on the host")


def _left_alone(ctx: Context, ns: str) -> bool:
    """Whether the namespace is not this vcluster's (provisioning refused to adopt it);
    if so, noted as left alone."""
    if conflict := ctx.ownership_conflict("v1", "Namespace", ns):
        ctx.changes.append(f"nothing: Namespace {ns} {conflict}, so it was left alone")
    return bool(conflict)


def delete_cluster_scoped(ctx: Context) -> None:
    """The syncer's node-reader binding, and its binding and host-name claims in the
    namespace of claims (syncer.kinds.ingresses)."""
    ns = ctx.placement.host_namespace
    name = manifests.node_reader_binding_name(ns)
    rbac = "rbac.authorization.k8s.io/v1"
    for kind, namespace in (("ClusterRoleBinding", None), ("RoleBinding", CLAIMS_NAMESPACE)):
        where = f"{namespace}/" if namespace else ""
        if conflict := ctx.ownership_conflict(rbac, kind, name, namespace):
            ctx.changes.append(f"nothing: {kind} {where}{name} {conflict}, so it was left alone")
        elif ctx.host.delete(rbac, kind, name, namespace):
            ctx.changes.append(f"{kind} {where}{name}")
    claims = ctx.host.delete_labelled("coordination.k8s.io/v1", "Lease", CLAIMS_NAMESPACE, f"{CLAIM_HOLDER}={ns}")
    if claims:
        ctx.changes.append(f"{len(claims)} Ingress host-name claims: {', '.join(claims)}")


def remove_credentials(ctx: Context) -> None:
    if VCluster.objects.filter(pk=ctx.vcluster.pk).exclude(kubeconfig="").update(kubeconfig=""):
        ctx.changes.append("stored admin kubeconfig")


def verify_gone(ctx: Context) -> None:
    selector = manifests.selector(ctx.vcluster.pk, ctx.installation.name)
    leftovers = ctx.host.find_labelled(selector)
    if leftovers:
        raise Transient(f"still on the host: {', '.join(leftovers[:10])}")
    # Only what was checked here: the runtime's step checked and listed its own part
    # (processes and state directory, or pod, claim and volume).
    ctx.changes.append(f"no object labelled {selector} in any namespace or cluster-wide")


TEARDOWN = (
    Step("Delete host namespace", delete_namespace),
    Step("Stop syncer and control plane", stop_runtime),
    Step("Host namespace gone", wait_namespace_gone),
    Step("Remove cluster-wide objects", delete_cluster_scoped),
    Step("Remove credentials", remove_credentials),
    Step("Verify nothing remains", verify_gone),
)


# Running the steps ------------------------------------------------------------
def provision(vcluster_id: int) -> None:
    """Bring a Pending or Provisioning vcluster to Ready, or mark it Failed."""
    vc = _load(vcluster_id)
    if vc is None:
        return
    lifecycle.transition(vc, Event.START)
    if vc.phase != Phase.PROVISIONING:
        return
    ctx = Context(vc)
    try:
        for step in PROVISION:
            _run(ctx, step)
    except Permanent as exc:
        _fail(vc, str(exc))
        return
    if lifecycle.transition(vc, Event.READY, message=""):
        metrics.CREATE_TO_READY.observe((timezone.now() - vc.created_at).total_seconds())


def teardown(vcluster_id: int) -> None:
    """Remove everything of a Deleting vcluster, check it is gone, mark it Deleted."""
    vc = _load(vcluster_id)
    if vc is None or vc.phase != Phase.DELETING:
        return
    ctx = Context(vc)
    removed = []
    if Placement.objects.filter(vcluster=vc).exists():
        for step in TEARDOWN:
            _run(ctx, step, permanent_is_transient=True)
            removed.append({"step": step.name, "done": _step(vc, step.name).message})
        Placement.objects.filter(vcluster=vc).update(
            receipt={"steps": removed, "finished_at": timezone.now().isoformat()}
        )
    else:
        remove_credentials(ctx)
    lifecycle.transition(vc, Event.TORN_DOWN, deleted_at=timezone.now(), message="")


def repair(vcluster_id: int) -> list[str]:
    """Re-ensure every provisioning step of a Ready vcluster; record what drifted."""
    vc = _load(vcluster_id)
    if vc is None or vc.phase != Phase.READY or not Placement.objects.filter(vcluster=vc).exists():
        return []
    ctx = Context(vc)
    for step in PROVISION:
        step.ensure(ctx)
    if ctx.changes:
        VClusterEvent.objects.create(
            vcluster=vc, kind=EventKind.REPAIR, message="Brought back to the desired state: " + ", ".join(ctx.changes)
        )
    return ctx.changes


def _run(ctx: Context, step: Step, permanent_is_transient: bool = False) -> None:
    record = _step(ctx.vcluster, step.name)
    already_done = record.status == StepStatus.SUCCEEDED
    if not already_done:
        VClusterStep.objects.filter(pk=record.pk).update(
            status=StepStatus.RUNNING, started_at=record.started_at or timezone.now(), finished_at=None
        )
    ctx.changes = []
    started = time.monotonic()
    try:
        _ensure(ctx, step, record, permanent_is_transient)
    except Transient:
        _observe(step, "retrying", started)
        raise
    except Permanent:
        _observe(step, "failed", started)
        raise
    _observe(step, "succeeded", started)
    if not already_done:
        VClusterStep.objects.filter(pk=record.pk).update(
            status=StepStatus.SUCCEEDED, finished_at=timezone.now(),
            message="; ".join(ctx.changes) or "Already in place.",
        )


def _observe(step: Step, outcome: str, started: float) -> None:
    metrics.STEP_SECONDS.labels(step.name, outcome).observe(time.monotonic() - started)


def _ensure(ctx: Context, step: Step, record: VClusterStep, permanent_is_transient: bool) -> None:
    """Run the step; its error becomes Transient or Permanent, recorded on the step."""
    try:
        step.ensure(ctx)
        _fault_pause(step.name)
    except (Transient, Permanent) as exc:
        _record_error(record, exc, transient=isinstance(exc, Transient) or permanent_is_transient)
        raise Transient(str(exc)) if permanent_is_transient else exc
    except RuntimeNotReady as exc:
        _record_error(record, exc, transient=True)
        raise Transient(f"{step.name}: {exc}") from None
    except RuntimeFailure as exc:
        _record_error(record, exc, transient=permanent_is_transient)
        raise Transient(str(exc)) if permanent_is_transient else Permanent(f"{step.name}: {exc}") from None
    except Exception as exc:
        transient = is_transient(exc) or is_database_unavailable(exc)
        _record_error(record, exc, transient=transient or permanent_is_transient)
        if transient or permanent_is_transient:
            raise Transient(f"{step.name}: {describe(exc)}") from exc
        raise Permanent(f"{step.name}: {describe(exc)}") from exc


def _fault_pause(step: str) -> None:
    """For the crash-safety tests only: widen the window between a step's effect and
    its record, the worst moment for a worker to die. Zero (off) unless configured."""
    if settings.VCPORTAL_FAULT_PAUSE_AFTER_STEP and settings.VCPORTAL_FAULT_PAUSE_STEP in ("", step):
        time.sleep(settings.VCPORTAL_FAULT_PAUSE_AFTER_STEP)


def _record_error(record: VClusterStep, exc: BaseException, transient: bool) -> None:
    if transient:
        VClusterStep.objects.filter(pk=record.pk).update(message=f"Retrying after: {describe(exc)}")
    else:
        VClusterStep.objects.filter(pk=record.pk).update(
            status=StepStatus.FAILED, finished_at=timezone.now(), message=describe(exc)
        )


def _step(vc: VCluster, name: str) -> VClusterStep:
    record, _ = VClusterStep.objects.get_or_create(vcluster=vc, name=name)
    return record


def _load(vcluster_id: int) -> VCluster | None:
    """None once the row is gone: a task for it has nothing left to do."""
    return VCluster.objects.select_related("team").filter(pk=vcluster_id).first()


def _fail(vc: VCluster, message: str) -> None:
    """Stop the vcluster's work where a person must look (lifecycle: Provisioning
    becomes Failed, Deleting DeleteFailed), with its Running step marked Failed."""
    with transaction.atomic():
        if lifecycle.transition(vc, Event.FAIL, message=message):
            VClusterStep.objects.filter(vcluster=vc, status=StepStatus.RUNNING).update(
                status=StepStatus.FAILED, finished_at=timezone.now()
            )
            logger.warning("vcluster %s is %s: %s", vc.pk, vc.phase, message)


def give_up(vcluster_id: int, message: str) -> None:
    """Too many transient errors in a row: stop, so a person looks at it. Retry
    resumes the work."""
    if vc := _load(vcluster_id):
        _fail(vc, f"Gave up after repeated errors: {message}")
