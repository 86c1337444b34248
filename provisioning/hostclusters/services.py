"""Every change to host clusters and team provisioning policies goes through here, for
pages, API and management commands alike: authorised (platform admins, or the system
actor of a command run on the portal's machine), validated before anything is written,
and audited in the same transaction.

A host cluster's kubeconfig is admin access to that cluster: it is checked by
connecting to the cluster, stored encrypted, and never logged, audited or returned.
"""

from __future__ import annotations

import ipaddress
import logging
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify
import urllib3
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from accounts.access import require_of
from accounts.audit import Actor, record
from accounts.models import Team
from portal import yamlinput
from portal.errors import invalid
from portal.kubeapi import describe
from syncer.policy import PolicyError, TenantPolicy
from vclusters.lifecycle import COUNTS_AGAINST_QUOTA
from vclusters.models import NAME_RE

from .. import installation, runtimes
from ..hostkube import HostKube, HostUnreachable
from . import placement
from ..models import Access, HostCluster, Placement, PodSecurity, TeamPolicy

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = HostCluster._meta.get_field("name").max_length
NOTES_MAX_LENGTH = 2000
KUBECONFIG_MAX_LENGTH = 64 * 1024
# Keys that make the Kubernetes client read files on the portal's machine or run a
# command there. A kubeconfig sent through the API or a page must carry its
# credentials inline (`kubectl config view --raw --flatten --minify` gives one).
UNSAFE_CLUSTER_KEYS = {"certificate-authority"}
UNSAFE_USER_KEYS = {"client-certificate", "client-key", "tokenFile", "token-file", "exec", "auth-provider"}

IMAGE_MAX_LENGTH = HostCluster._meta.get_field("runtime_image").max_length
ADDRESS_MAX_LENGTH = HostCluster._meta.get_field("access_address").max_length
# `[registry[:port]/]path[:tag][@sha256:<64 hex>]`, as container registries spell references.
_REGISTRY = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_RE = re.compile(
    rf"\A(?:{_REGISTRY}/)?{_PATH_PART}(?:/{_PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?\Z"
)
# Each vcluster of an `ingress` host is `<host namespace>.<domain>`: a namespace is one
# DNS label of up to 63 characters, and the whole name at most 253.
INGRESS_DOMAIN_MAX_LENGTH = 253 - 64
RUNTIME_FIELDS = ("runtime", "runtime_image", "access", "access_address")
# What each of them means: the API's schema, the forms and the command show the same.
HELP = {
    "runtime": "Where new vclusters' control planes and syncers run: kubernetes (pods in the host cluster's "
               "namespaces) or local (processes on the worker; development). A change affects new vclusters only: "
               "each vcluster keeps the runtime it was placed with.",
    "runtime_image": "Image of the control plane and syncer for the kubernetes runtime, "
                     "[registry[:port]/]path[:tag][@sha256:…]; empty: the portal's default. "
                     "A change affects new vclusters only.",
    "access": "How tenants reach a kubernetes-runtime vcluster's API server: nodeport (a port on a node), "
              "loadbalancer (a LoadBalancer Service each), ingress (TLS passthrough, a name each) or clusterip "
              "(only through the portal's gateway; the portal must reach the cluster's Services, e.g. run in it). "
              "A change affects new vclusters only.",
    "access_address": "nodeport: the address (IP or DNS name) of a node tenants can reach, put in kubeconfigs; "
                      "ingress: the DNS domain under which each vcluster is <host-namespace>.<domain>; "
                      "loadbalancer: unused. A change affects new vclusters only.",
}



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


def _choice_errors(value, allowed) -> list[str]:
    return [] if value in allowed else [f"Choose one of: {', '.join(allowed)}."]


def _image_errors(image) -> list[str]:
    """Blank (the default image) or something shaped like an image reference."""
    if not isinstance(image, str):
        return ["Must be text."]
    if len(image) > IMAGE_MAX_LENGTH:
        return [f"At most {IMAGE_MAX_LENGTH} characters."]
    if image and not IMAGE_RE.match(image):
        return ["Give an image reference, [registry[:port]/]path[:tag][@sha256:…], e.g. "
                "registry.example.com:5000/vcportal/runtime:1.0, without spaces."]
    return []


def _is_dns_name(name: str) -> bool:
    """A DNS name of lowercase labels; its last label is not all digits, so an IP
    address (or a mistyped one) is not taken for a name."""
    labels = name.split(".")
    return (len(name) <= 253 and all(len(label) <= 63 and NAME_RE.fullmatch(label) for label in labels)
            and not labels[-1].isdigit())


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _access_address_errors(runtime, mode, address) -> list[str]:
    """What the address must be for this runtime and access mode (the mode itself is
    checked on its own). Only the kubernetes runtime's nodeport and ingress use it."""
    if not isinstance(address, str):
        return ["Must be text."]
    if len(address) > ADDRESS_MAX_LENGTH:
        return [f"At most {ADDRESS_MAX_LENGTH} characters."]
    if not runtimes.REGISTRY[runtime].uses_access:
        return []
    if mode == Access.NODEPORT and not (_is_ip_address(address) or _is_dns_name(address)):
        return ["Give the address of a node tenants can reach (an IP address or DNS name, e.g. 203.0.113.10 or "
                "node1.example.com): with access nodeport, kubeconfigs name it with each vcluster's node port."]
    if mode == Access.INGRESS and not (_is_dns_name(address) and len(address) <= INGRESS_DOMAIN_MAX_LENGTH):
        return ["Give the DNS domain whose names reach the ingress controller (e.g. vc.example.com, at most "
                f"{INGRESS_DOMAIN_MAX_LENGTH} characters): each vcluster is <host-namespace>.<domain>."]
    return []


def _normal_address(address):
    """Addresses and names compare and are stored in lowercase, without surrounding spaces."""
    return address.strip().lower() if isinstance(address, str) else address


def _runtime_errors(runtime, runtime_image, mode, access_address) -> dict[str, list[str]]:
    errors = {"runtime": _choice_errors(runtime, list(runtimes.REGISTRY)), "access": _choice_errors(mode, Access.values),
              "runtime_image": _image_errors(runtime_image)}
    if not errors["runtime"] and not errors["access"]:  # the address's rules depend on both
        errors["access_address"] = _access_address_errors(runtime, mode, access_address)
    return errors


def _unsafe_keys(doc: dict) -> list[str]:
    found = []
    for kind, unsafe in (("clusters", UNSAFE_CLUSTER_KEYS), ("users", UNSAFE_USER_KEYS)):
        entries = doc.get(kind)
        for entry in entries if isinstance(entries, list) else []:
            body = entry.get(kind[:-1]) if isinstance(entry, dict) else None
            if isinstance(body, dict):
                found += sorted(unsafe & set(body))
    return sorted(set(found))


def _credentials_errors(kubeconfig, in_cluster) -> dict[str, list[str]]:
    """A kubeconfig, or in-cluster credentials: checked by connecting to the cluster."""
    if not in_cluster:
        return {"kubeconfig": _kubeconfig_errors(kubeconfig)}
    if kubeconfig:
        return {"kubeconfig": ["Leave it out: an in-cluster host cluster uses the portal's own ServiceAccount."]}
    try:
        HostKube(None, retries=0).version()
    except ConfigException as exc:
        return {"in_cluster": [f"The portal does not run in a Kubernetes pod with a ServiceAccount token ({exc})."]}
    except HostUnreachable as exc:
        return {"in_cluster": [f"cannot reach the cluster the portal runs in: {exc}"]}
    return {}


def _claim_errors(name, kubeconfig, in_cluster) -> dict[str, list[str]]:
    """Record on the cluster that this portal manages it, unless another portal of the
    same name (or token) already does (provisioning.installation). Credentials already
    checked."""
    field = "in_cluster" if in_cluster else "kubeconfig"
    try:
        installation.claim(HostKube(None if in_cluster else kubeconfig, retries=0), name)
    except installation.Conflict as exc:
        return {field: [str(exc)]}
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        return {field: [f"cannot record on the cluster that this portal manages it (namespace "
                        f"{installation.record_name(installation.current().name)}): {describe(exc)}"]}
    return {}


def _kubeconfig_errors(text) -> list[str]:
    """Why this kubeconfig cannot be used, or nothing: checked by connecting to the
    cluster it names. Messages never quote the kubeconfig."""
    if not isinstance(text, str) or not text.strip():
        return ["This field is required."]
    if len(text) > KUBECONFIG_MAX_LENGTH:
        return [f"At most {KUBECONFIG_MAX_LENGTH // 1024} KiB."]
    try:
        doc = yamlinput.load(text)
    except yamlinput.NotYAML:
        return ["kubeconfig is not valid YAML"]
    if isinstance(doc, dict):
        unsafe = _unsafe_keys(doc)
        if unsafe:
            return [
                f"kubeconfig refers to files or commands on the portal's machine ({', '.join(unsafe)}); "
                "embed the credentials instead, e.g. with `kubectl config view --raw --flatten --minify`."
            ]
    try:
        placement.check_kubeconfig(text)
    except placement.HostClusterError as exc:
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
    return {"enabled": host.enabled, "in_cluster": host.in_cluster, "capacity_notes": host.capacity_notes,
            "teams": sorted(t.slug for t in teams),
            "tenant_policy": host.tenant_policy, **{field: getattr(host, field) for field in RUNTIME_FIELDS}}


# Host clusters ----------------------------------------------------------------
def register_host_cluster(actor: Actor, *, name, kubeconfig, enabled=True, capacity_notes="", teams=(),
                          tenant_policy=None, runtime=runtimes.DEFAULT, runtime_image="", access=Access.NODEPORT,
                          access_address="", in_cluster=False) -> HostCluster:
    """Add a host cluster once its kubeconfig (or, in_cluster, the portal's own
    ServiceAccount) reaches the cluster. Every bad field is reported at once; nothing is
    written unless all are good."""
    require_of(actor, "add", HostCluster)
    team_list, team_errors = _parse_teams(teams)
    policy, policy_errors = _parse_policy({} if tenant_policy is None else tenant_policy)
    access_address = _normal_address(access_address)
    _raise({
        "name": _name_errors(name),
        "capacity_notes": _notes_errors(capacity_notes),
        "teams": team_errors,
        "tenant_policy": policy_errors,
        **_runtime_errors(runtime, runtime_image, access, access_address),
        **_credentials_errors(kubeconfig, in_cluster),
    })
    _raise(_claim_errors(name, kubeconfig, in_cluster))
    try:
        with transaction.atomic():
            host = HostCluster.objects.create(
                name=name, kubeconfig=kubeconfig or "", in_cluster=bool(in_cluster), enabled=bool(enabled),
                capacity_notes=capacity_notes,
                tenant_policy=policy, runtime=runtime, runtime_image=runtime_image, access=access,
                access_address=access_address,
            )
            host.teams.set(team_list)
            record(actor, "host_cluster.create", target=host, **_as_text(host, team_list))
    except IntegrityError:  # a concurrent registration took the name
        raise invalid("name", f"A host cluster named \"{name}\" already exists.") from None
    logger.info("host cluster %s registered by %s", name, actor.user or "the system")
    return host


def register_or_replace_kubeconfig(actor: Actor, *, name, kubeconfig, enabled=None, in_cluster=False,
                                   new_tenant_policy=None, **runtime) -> tuple[HostCluster, bool]:
    """Register a host cluster, or replace the kubeconfig of one with that name (what
    `manage.py register_hostcluster` does). `enabled` None keeps an existing host's
    state; a new one starts enabled. `runtime` holds those of RUNTIME_FIELDS to set;
    those left out keep an existing host's values, or get the defaults on a new one.
    `new_tenant_policy` is a new host's policy; an existing host keeps its own (an admin
    may have changed it). Returns the host cluster and whether it is new."""
    host = HostCluster.objects.filter(name=name).first()
    changes = {"kubeconfig": kubeconfig, "in_cluster": bool(in_cluster), **runtime}
    if host is None:
        return register_host_cluster(actor, name=name, enabled=enabled is not False, tenant_policy=new_tenant_policy,
                                     **changes), True
    if enabled is not None:
        changes["enabled"] = enabled
    return update_host_cluster(actor, host, **changes), False


UPDATABLE = {"enabled", "capacity_notes", "teams", "tenant_policy", "kubeconfig", "in_cluster", *RUNTIME_FIELDS}


def _runtime_change_errors(host: HostCluster, changes: dict) -> dict[str, list[str]]:
    """The runtime fields checked together as they would be after the change, and only
    if it changes one of them: a host row written otherwise (an older rule, a test row)
    can still be enabled, disabled or annotated."""
    after = {field: changes.get(field, getattr(host, field)) for field in RUNTIME_FIELDS}
    if all(after[field] == getattr(host, field) for field in RUNTIME_FIELDS):
        return {}
    return _runtime_errors(after["runtime"], after["runtime_image"], after["access"], after["access_address"])


def update_host_cluster(actor: Actor, host: HostCluster, **changes) -> HostCluster:
    """Change any of enabled, capacity_notes, teams (slugs), tenant_policy, kubeconfig
    (checked by connecting, like at registration) and the runtime fields (new vclusters
    only: placements keep the runtime they were made with). The name is the host
    cluster's identity and stays."""
    require_of(actor, "change", host)
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
    if "access_address" in changes:
        changes["access_address"] = _normal_address(changes["access_address"])
    errors.update(_runtime_change_errors(host, changes))
    if "kubeconfig" in changes or "in_cluster" in changes:
        errors.update(_credentials_errors(changes.get("kubeconfig", ""), changes.get("in_cluster", host.in_cluster)))
    _raise(errors)
    if "kubeconfig" in changes or "in_cluster" in changes:
        _raise(_claim_errors(host.name, changes.get("kubeconfig", ""), changes.get("in_cluster", host.in_cluster)))
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
        if "kubeconfig" in changes or "in_cluster" in changes:
            locked.kubeconfig = changes.get("kubeconfig") or ""
            locked.in_cluster = bool(changes.get("in_cluster", locked.in_cluster))
            fields += ["kubeconfig", "in_cluster"]
        for field in RUNTIME_FIELDS:
            if field in changes:
                setattr(locked, field, changes[field])
                fields.append(field)
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
    require_of(actor, "delete", host)
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
    require_of(actor, "change", team)
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
