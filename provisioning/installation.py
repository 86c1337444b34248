"""This portal's identity on the host clusters it manages (docs/installation.md).

Every host object a portal writes carries its installation name (the
`vcportal.io/installation` label), and teardown, repair and the final "no trace" check
look only at objects with that name; host namespaces carry its short token
(`vc-<token>-<id>-<team>-<name>`). Both must be this portal's alone on every host it
shares, so both are generated once for the portal's database (the name `vcp-<token>`
unless VCPORTAL_INSTALLATION gives a readable one), and a database from before the name
was stored keeps the one its objects already carry (migration 0008).

On each host it uses, a portal claims its name and token with a record, an empty
namespace `vcportal-installation-<name>` annotated with its database's identity (a
UUID). Another portal's claim on the same name or token is refused, naming it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from kubernetes.client.rest import ApiException

from portal.kubeapi import REQUEST_TIMEOUT, read_or_none

from .hostkube import HostKube
from .manifests import INSTALLATION_LABEL, MANAGED_BY, new_installation_token
from .models import Installation

RECORD_PREFIX = "vcportal-installation-"
TOKEN_LABEL = "vcportal.io/installation-token"
UID_ANNOTATION = "vcportal.io/installation-uid"
HOST_ANNOTATION = "vcportal.io/host-cluster"


class Conflict(Exception):
    """Another portal already holds this portal's name or token on a host."""


def current() -> Installation:
    """This portal's row, made at first use if the database has none yet."""
    row = Installation.objects.filter(pk=1).first() or _create()
    wanted = settings.VCPORTAL_INSTALLATION
    if wanted and wanted != row.name:
        raise ImproperlyConfigured(
            f"VCPORTAL_INSTALLATION is {wanted!r}, but this portal's database names it {row.name!r} and its host "
            f"objects carry that name; it cannot be renamed. Unset VCPORTAL_INSTALLATION or set it to {row.name!r}.")
    return row


def _create() -> Installation:
    token = new_installation_token()
    try:
        with transaction.atomic():
            return Installation.objects.create(pk=1, name=settings.VCPORTAL_INSTALLATION or f"vcp-{token}", token=token)
    except IntegrityError:  # another process made it first
        return Installation.objects.get(pk=1)


def record_name(name: str) -> str:
    return RECORD_PREFIX + name


def record(me: Installation, host_name: str) -> dict:
    """The namespace that tells every portal on a host that `me` manages it."""
    psa = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    return {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": record_name(me.name),
            "labels": {**MANAGED_BY, INSTALLATION_LABEL: me.name, TOKEN_LABEL: me.token, **psa},
            "annotations": {UID_ANNOTATION: str(me.uid), HOST_ANNOTATION: host_name},
        },
    }


# (API server, identity) pairs this process has found held: a claim, once ours, stays
# ours (another portal's create of the record fails), so provisioning, repair and teardown
# check each host once per process, not with two requests at every step of every reconcile.
_held: set[tuple[str, str]] = set()


def claim(kube: HostKube, host_name: str) -> Installation:
    """Make sure this portal holds its name and token on the host (`host_name` is what
    this portal calls it), recording them if no portal has. Conflict if another does."""
    me = current()
    if (kube.address, str(me.uid)) in _held:
        return me
    existing = read_or_none(kube.core.read_namespace, record_name(me.name))
    if existing is None:
        existing = _create_record(kube, record(me, host_name))
    if (existing.metadata.annotations or {}).get(UID_ANNOTATION) != str(me.uid):
        raise Conflict(f"host cluster {host_name} is already managed by another portal named {me.name!r} "
                       f"({_describe(existing)}). Two portals on one host need different names: "
                       "see docs/installation.md.")
    others = kube.core.list_namespace(label_selector=f"{TOKEN_LABEL}={me.token}", _request_timeout=REQUEST_TIMEOUT)
    for other in others.items:
        if other.metadata.name != existing.metadata.name:
            raise Conflict(f"host cluster {host_name} is already managed by another portal whose token is "
                           f"{me.token!r} too ({_describe(other)}). Host namespace names would collide: "
                           "see docs/installation.md.")
    _held.add((kube.address, str(me.uid)))
    return me


def _create_record(kube: HostKube, manifest: dict):
    try:
        return kube.core.create_namespace(manifest, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status != 409:  # a portal of the same name recorded itself meanwhile: judged below
            raise
    return kube.core.read_namespace(manifest["metadata"]["name"], _request_timeout=REQUEST_TIMEOUT)


def _describe(record_namespace) -> str:
    meta = record_namespace.metadata
    identity = (meta.annotations or {}).get(UID_ANNOTATION, "no identity")
    since = meta.creation_timestamp.isoformat() if meta.creation_timestamp else "unknown"
    return f"recorded in namespace {meta.name}: identity {identity}, since {since}"
