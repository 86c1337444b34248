"""Every change to host clusters and team provisioning policies goes through here, for
pages, API and management commands alike: authorised (platform admins, or the system
actor of a command run on the portal's machine), validated before anything is written,
and audited in the same transaction.

A host cluster's kubeconfig is admin access to that cluster: it is checked by
connecting to the cluster, stored encrypted, and never logged, audited or returned.
"""

from __future__ import annotations

import logging

import yaml
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from kubernetes.config.config_exception import ConfigException

from accounts import access
from accounts.audit import Actor, record
from accounts.models import Team
from portal.errors import invalid
from syncer.policy import PolicyError, TenantPolicy
from vclusters.models import COUNTS_AGAINST_QUOTA

from . import hosts
from .models import HostCluster, Placement, PodSecurity, TeamPolicy

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = HostCluster._meta.get_field("name").max_length
NOTES_MAX_LENGTH = 2000
KUBECONFIG_MAX_LENGTH = 64 * 1024
# Keys that make the Kubernetes client read files on the portal's machine or run a
# command there. A kubeconfig sent through the API or a page must carry its
# credentials inline (`kubectl config view --raw --flatten --minify` gives one).
UNSAFE_CLUSTER_KEYS = {"certificate-authority"}
UNSAFE_USER_KEYS = {"client-certificate", "client-key", "tokenFile", "token-file", "exec", "auth-provider"}



# Validation -------------------------------------------------------------------
def _name_errors(name) -> list[str]:
    if not isinstance(name, str) or not name.strip():
        return ["This field is required."]
    if len(name) > NAME_MAX_LENGTH or slugify(name) != name:
        return [f"Use lowercase letters, digits and '-' (at most {NAME_MAX_LENGTH} characters)."]
    if HostCluster.objects.filter(name=name).exists():
        return [f"A host cluster named \"{name}\" already exists."]
    return []


def _notes_errors(notes) -> list[str]:
    if not isinstance(notes, str):
        return ["Must be text."]
    if len(notes) > NOTES_MAX_LENGTH:
        return [f"At most {NOTES_MAX_LENGTH} characters."]
    return []


def _parse_teams(slugs) -> tuple[list[Team], list[str]]:
    """Teams named by slug; an empty list opens the host cluster to every team."""
    if not isinstance(slugs, (list, tuple)) or not all(isinstance(s, str) for s in slugs):
        return [], ["Give a list of team slugs."]
    teams = list(Team.objects.filter(slug__in=set(slugs)))
    unknown = sorted(set(slugs) - {t.slug for t in teams})
    if unknown:
        return [], [f"No team with the slug {', '.join(repr(s) for s in unknown)}."]
    return teams, []


def _parse_policy(value) -> tuple[dict, list[str]]:
    """A tenant policy in its stored form (what it allows beyond the default, lists
    sorted; {} allows nothing extra), or why it is bad."""
    if not isinstance(value, dict):
        return {}, ["Give an object (mapping) of policy keys; {} is the safe default."]
    try:
        return {key: allowed for key, allowed in TenantPolicy.from_dict(value).to_dict().items() if allowed}, []
    except PolicyError as exc:
        return {}, [str(exc)]


def _unsafe_keys(doc: dict) -> list[str]:
    found = []
    for kind, unsafe in (("clusters", UNSAFE_CLUSTER_KEYS), ("users", UNSAFE_USER_KEYS)):
        entries = doc.get(kind)
        for entry in entries if isinstance(entries, list) else []:
            body = entry.get(kind[:-1]) if isinstance(entry, dict) else None
            if isinstance(body, dict):
                found += sorted(unsafe & set(body))
    return sorted(set(found))


def _kubeconfig_errors(text) -> list[str]:
    """Why this kubeconfig cannot be used, or nothing: checked by connecting to the
    cluster it names. Messages never quote the kubeconfig."""
    if not isinstance(text, str) or not text.strip():
        return ["This field is required."]
    if len(text) > KUBECONFIG_MAX_LENGTH:
        return [f"At most {KUBECONFIG_MAX_LENGTH // 1024} KiB."]
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return ["kubeconfig is not valid YAML"]
    if isinstance(doc, dict):
        unsafe = _unsafe_keys(doc)
        if unsafe:
            return [
                f"kubeconfig refers to files or commands on the portal's machine ({', '.join(unsafe)}); "
                "embed the credentials instead, e.g. with `kubectl config view --raw --flatten --minify`."
            ]
    try:
        hosts.check_kubeconfig(text)
    except hosts.HostClusterError as exc:
        return [str(exc)]
    except (ConfigException, ValueError, TypeError, KeyError, AttributeError) as exc:
        # The client's own complaint (a missing key, bad base64): names keys, not values.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"kubeconfig is not usable: {reason}"]
    return []


def _raise(errors: dict) -> None:
    errors = {field: messages for field, messages in errors.items() if messages}
    if errors:
        raise ValidationError(errors)


def _as_text(host: HostCluster, teams: list[Team] | None = None) -> dict:
    """What the audit log keeps of a host cluster: everything but its kubeconfig."""
    teams = host.teams.all() if teams is None else teams
    return {"enabled": host.enabled, "capacity_notes": host.capacity_notes, "teams": sorted(t.slug for t in teams),
            "tenant_policy": host.tenant_policy}


# Host clusters ----------------------------------------------------------------
def register_host_cluster(actor: Actor, *, name, kubeconfig, enabled=True, capacity_notes="", teams=(),
                          tenant_policy=None) -> HostCluster:
    """Add a host cluster once its kubeconfig reaches the cluster. Every bad field is
    reported at once; nothing is written unless all are good."""
    access.require_of(actor, "add", HostCluster)
    team_list, team_errors = _parse_teams(teams)
    policy, policy_errors = _parse_policy({} if tenant_policy is None else tenant_policy)
    _raise({
        "name": _name_errors(name),
        "capacity_notes": _notes_errors(capacity_notes),
        "teams": team_errors,
        "tenant_policy": policy_errors,
        "kubeconfig": _kubeconfig_errors(kubeconfig),
    })
    try:
        with transaction.atomic():
            host = HostCluster.objects.create(
                name=name, kubeconfig=kubeconfig, enabled=bool(enabled), capacity_notes=capacity_notes,
                tenant_policy=policy,
            )
            host.teams.set(team_list)
            record(actor, "host_cluster.create", target=host, **_as_text(host, team_list))
    except IntegrityError:  # a concurrent registration took the name
        raise invalid("name", f"A host cluster named \"{name}\" already exists.") from None
    logger.info("host cluster %s registered by %s", name, actor.user or "the system")
    return host


def register_or_replace_kubeconfig(actor: Actor, *, name, kubeconfig, enabled=None) -> tuple[HostCluster, bool]:
    """Register a host cluster, or replace the kubeconfig of one with that name (what
    `manage.py register_hostcluster` does). `enabled` None keeps an existing host's
    state; a new one starts enabled. Returns the host cluster and whether it is new."""
    host = HostCluster.objects.filter(name=name).first()
    if host is None:
        return register_host_cluster(actor, name=name, kubeconfig=kubeconfig, enabled=enabled is not False), True
    changes = {"kubeconfig": kubeconfig} if enabled is None else {"kubeconfig": kubeconfig, "enabled": enabled}
    return update_host_cluster(actor, host, **changes), False


UPDATABLE = {"enabled", "capacity_notes", "teams", "tenant_policy", "kubeconfig"}


def update_host_cluster(actor: Actor, host: HostCluster, **changes) -> HostCluster:
    """Change any of enabled, capacity_notes, teams (slugs), tenant_policy and kubeconfig
    (checked by connecting, like at registration). The name is the host cluster's
    identity and stays."""
    access.require_of(actor, "change", host)
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
    errors = {}
    if "capacity_notes" in changes:
        errors["capacity_notes"] = _notes_errors(changes["capacity_notes"])
    if "teams" in changes:
        changes["teams"], errors["teams"] = _parse_teams(changes["teams"])
    if "tenant_policy" in changes:
        changes["tenant_policy"], errors["tenant_policy"] = _parse_policy(changes["tenant_policy"])
    if "kubeconfig" in changes:
        errors["kubeconfig"] = _kubeconfig_errors(changes["kubeconfig"])
    _raise(errors)
    with transaction.atomic():
        locked = HostCluster.objects.select_for_update().get(pk=host.pk)
        before = _as_text(locked)
        fields = []
        if "enabled" in changes:
            locked.enabled = bool(changes["enabled"])
            fields.append("enabled")
        if "capacity_notes" in changes:
            locked.capacity_notes = changes["capacity_notes"]
            fields.append("capacity_notes")
        if "tenant_policy" in changes:
            locked.tenant_policy = changes["tenant_policy"]
            fields.append("tenant_policy")
        if "kubeconfig" in changes:
            locked.kubeconfig = changes["kubeconfig"]
            fields.append("kubeconfig")
        locked.save(update_fields=fields)
        if "teams" in changes:
            locked.teams.set(changes["teams"])
        after = _as_text(locked)
        data = {"before": before, "after": after}
        if "kubeconfig" in changes:
            data["kubeconfig_replaced"] = True
        record(actor, "host_cluster.update", target=locked, **data)
    return locked


def set_host_cluster_enabled(actor: Actor, host: HostCluster, enabled: bool) -> HostCluster:
    return update_host_cluster(actor, host, enabled=enabled)


def live_placements(host: HostCluster):
    return Placement.objects.filter(host_cluster=host, vcluster__phase__in=COUNTS_AGAINST_QUOTA)


def delete_host_cluster(actor: Actor, host: HostCluster) -> None:
    """Forget a host cluster that no live vcluster is placed on. Placements of Deleted
    vclusters (with their teardown receipts) stay and no longer name a host cluster."""
    access.require_of(actor, "delete", host)
    with transaction.atomic():
        # The row lock makes a concurrent placement on this host wait, then fail.
        locked = HostCluster.objects.select_for_update().get(pk=host.pk)
        live = live_placements(locked).count()
        if live:
            raise invalid(
                "name",
                f"{live} vcluster{'s are' if live != 1 else ' is'} still placed on {locked}; "
                "delete them first, or disable the host cluster so no new ones are placed on it.",
            )
        record(actor, "host_cluster.delete", target=locked, **_as_text(locked))
        locked.delete()


# Team policy ------------------------------------------------------------------
def pod_security_of(team: Team) -> str:
    policy = TeamPolicy.objects.filter(team=team).first()
    return policy.pod_security if policy else PodSecurity.BASELINE


def set_pod_security(actor: Actor, team: Team, pod_security) -> TeamPolicy:
    """The Pod Security level enforced on the host namespaces of the team's vclusters:
    new ones at once, existing ones at the reconciler's next pass."""
    access.require_of(actor, "change", team)
    if pod_security not in PodSecurity.values:
        raise invalid("pod_security", f"Must be one of: {', '.join(PodSecurity.values)}.")
    with transaction.atomic():
        locked = Team.objects.select_for_update().get(pk=team.pk)
        policy, _ = TeamPolicy.objects.get_or_create(team=locked)
        before = policy.pod_security
        policy.pod_security = pod_security
        policy.save(update_fields=["pod_security"])
        record(actor, "team.policy", team=locked, target=locked, pod_security_before=before,
               pod_security=pod_security)
    return policy
