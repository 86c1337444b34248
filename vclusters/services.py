"""Every change to vclusters goes through here, for pages and API alike: validated,
authorised, quota-checked under a team row lock, audited in the same transaction,
with provisioning asked for work (vclusters.signals) only once the transaction has committed."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum

from accounts import access, resources
from accounts.audit import Actor, record
from accounts.models import Team
from portal.errors import NotReady, QuotaExceeded, invalid

from . import lifecycle
from .lifecycle import Event, Phase
from .models import NAME_MAX_LENGTH, StepStatus, VCluster, VClusterStep, validate_name


def default_spec() -> dict[str, str | int]:
    return {"kubernetes_version": settings.VCPORTAL_KUBERNETES_VERSIONS[0], **settings.VCPORTAL_DEFAULT_VCLUSTER_RESOURCES}


def _validate_spec(name, raw: dict) -> dict:
    """Model field values for a new vcluster; raises ValidationError naming each bad field."""
    errors = {}
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = ["This field is required."]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [f"At most {NAME_MAX_LENGTH} characters."]
    else:
        try:
            validate_name(name)
        except ValidationError as exc:
            errors["name"] = exc.messages
    spec = {**default_spec(), **{k: v for k, v in raw.items() if v not in (None, "")}}
    version = spec["kubernetes_version"]
    if version not in settings.VCPORTAL_KUBERNETES_VERSIONS:
        supported = ", ".join(settings.VCPORTAL_KUBERNETES_VERSIONS)
        errors["kubernetes_version"] = [f"\"{version}\" is not supported; choose one of: {supported}."]
    values, resource_errors = resources.parse_all(spec)
    errors.update(resource_errors)
    if errors:
        raise ValidationError(errors)
    return {"name": name, "kubernetes_version": version, **values}


def _check_quota(team: Team, fields: dict) -> None:
    used = usage_by_team([team.pk])[team.pk]
    if used["max_vclusters"] >= team.max_vclusters:
        raise QuotaExceeded(
            {"team": [f"Quota max_vclusters exhausted: {team} has {used['max_vclusters']} of {team.max_vclusters} vclusters."]}
        )
    errors = {}
    for r in resources.RESOURCES:
        left = max(getattr(team, r.field) - used[r.field], 0)
        if fields[r.field] > left:
            errors[r.name] = [
                f"Quota {r.name} exceeded: requested {r.format(fields[r.field])}, "
                f"{r.format(left)} left of {r.format(getattr(team, r.field))}."
            ]
    if errors:
        raise QuotaExceeded(errors)


def create_vcluster(actor: Actor, team: Team, *, name: str, **raw) -> VCluster:
    """raw: optional kubernetes_version, cpu, memory, storage, pods in Kubernetes notation."""
    access.require(actor.user, "create_vcluster", team)
    unknown = set(raw) - {"kubernetes_version", *resources.BY_NAME}
    if unknown:
        raise ValidationError({field: ["Unknown field."] for field in sorted(unknown)})
    fields = _validate_spec(name, raw)
    with transaction.atomic():
        # The lock serialises creates per team, so concurrent requests cannot overshoot.
        team = Team.objects.select_for_update().get(pk=team.pk)
        if VCluster.objects.filter(team=team, name=fields["name"]).exclude(phase=Phase.DELETED).exists():
            raise invalid("name", f"{team} already has a vcluster named \"{fields['name']}\".")
        _check_quota(team, fields)
        try:
            with transaction.atomic():
                vcluster = VCluster.objects.create(team=team, created_by=actor.user, **fields)
        except IntegrityError:
            raise invalid("name", f"{team} already has a vcluster named \"{fields['name']}\".") from None
        record(actor, "vcluster.create", team=team, target=vcluster, **vcluster.requested(),
               kubernetes_version=vcluster.kubernetes_version)
        lifecycle.created(vcluster)
    return vcluster


def delete_vcluster(actor: Actor, vcluster: VCluster) -> VCluster:
    access.require(actor.user, "delete", vcluster)
    with transaction.atomic():
        phase_before = VCluster.objects.select_for_update().values_list("phase", flat=True).get(pk=vcluster.pk)
        vcluster.phase = phase_before
        if not lifecycle.transition(vcluster, Event.DELETE):
            raise invalid("phase", f"{vcluster} is already {vcluster.phase.lower()}.")
        record(actor, "vcluster.delete", team=vcluster.team, target=vcluster, phase_before=phase_before)
    return vcluster


def retry_vcluster(actor: Actor, vcluster: VCluster) -> VCluster:
    """Send a Failed vcluster back to provisioning, or a DeleteFailed one back to
    teardown. Succeeded steps stay Succeeded (the
    pipeline checks them again and redoes only what is missing); the step that failed
    (or was left Running when the task gave up after repeated transient errors) is
    reset to Pending, so it shows as running again with its own times."""
    access.require(actor.user, "change", vcluster)
    with transaction.atomic():
        vcluster.phase, failure = (
            VCluster.objects.select_for_update().values_list("phase", "message").get(pk=vcluster.pk)
        )
        note = f"Retried by {actor.user.get_username()} after: {failure or 'no message'}"
        if not lifecycle.transition(vcluster, Event.RETRY, message="", note=note):
            raise invalid("phase", f"Only a Failed or DeleteFailed vcluster can be retried; {vcluster} is "
                                   f"{vcluster.phase}.")
        VClusterStep.objects.filter(vcluster=vcluster, status__in=[StepStatus.FAILED, StepStatus.RUNNING]).update(
            status=StepStatus.PENDING, started_at=None, finished_at=None, message=""
        )
        record(actor, "vcluster.retry", team=vcluster.team, target=vcluster, failure=failure or "")
    return vcluster


def download_admin_kubeconfig(actor: Actor, vcluster: VCluster) -> str:
    """The vcluster's stored admin (system:masters) kubeconfig: break-glass access for
    platform admins, audited. Everyone else connects through the gateway. Raises
    NotReady before the vcluster is Ready."""
    access.require_of(actor, "download_admin_kubeconfig", vcluster)
    if vcluster.phase != Phase.READY or not vcluster.kubeconfig:
        raise NotReady(f"{vcluster} is {vcluster.phase}; its kubeconfig exists once it is Ready.")
    with transaction.atomic():
        record(actor, "vcluster.kubeconfig", team=vcluster.team, target=vcluster, break_glass=True)
    return vcluster.kubeconfig


def usage_by_team(team_ids) -> dict[int, dict[str, int]]:
    """What each team's vclusters request now, keyed like Team.quota(), in one query.
    Provided to accounts (extensions.provide_usage) for Team.usage() and team pages."""
    rows = (
        VCluster.objects.filter(team_id__in=list(team_ids)).counting_against_quota().values("team_id")
        .annotate(max_vclusters=Count("id"), **{r.field: Sum(r.field) for r in resources.RESOURCES})
    )
    empty = {"max_vclusters": 0, **{r.field: 0 for r in resources.RESOURCES}}
    totals = {team_id: dict(empty) for team_id in team_ids}
    for row in rows:
        totals[row.pop("team_id")] = row
    return totals
