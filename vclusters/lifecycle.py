"""A vcluster's lifecycle: every phase with what it means, and every transition.

Two tables own these facts, PHASES and TRANSITIONS; everything else derives from them:
the sets pages and queries use, the reconciler's phase → work map, the GitOps status
reasons, what the pages offer (Retry, Delete), the API's enum, and whether a client
following a vcluster should keep waiting (`in_progress` in the API).

`transition()` is the only writer of VCluster.phase (a test reads the source to keep it
so): a compare-and-set against the phase the caller saw, the event row the transition
leaves, and on commit the signal asking for the new phase's work.

This module imports no model: models import the phases from here, and transition()
reaches the rows through the instance it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models, transaction
from django.utils import timezone

from . import signals


class Phase(models.TextChoices):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    FAILED = "Failed"
    DELETING = "Deleting"
    DELETED = "Deleted"
    DELETE_FAILED = "DeleteFailed", "Teardown failed"


class EventKind(models.TextChoices):
    """The kinds of a vcluster's event rows: what happened to it outside its steps."""

    REPAIR = "repair", "Repair"
    RETRY = "retry", "Retry"
    FAILURE = "failure", "Failure"


class Work(StrEnum):
    """What the workers do for a vcluster in a phase."""

    PROVISION = "provision"
    TEARDOWN = "teardown"
    REPAIR = "repair"


@dataclass(frozen=True)
class PhaseInfo:
    meaning: str
    badge: str  # the CSS badge of the pages
    in_progress: bool  # work is under way: pages poll, clients following it keep waiting
    counts_against_quota: bool  # holds, or may soon hold, resources on a host
    work: Work | None  # what the reconciler runs for a vcluster in this phase; None: leave it alone
    deletion_requested: bool  # someone asked for it to go; nothing brings it back
    gitops_reason: str  # the VirtualCluster's Ready condition reason
    gitops_message: str  # that condition's message when the vcluster has none of its own


PHASES: dict[Phase, PhaseInfo] = {
    Phase.PENDING: PhaseInfo(
        "Created; waiting for a worker to start provisioning.", "neutral", True, True, Work.PROVISION, False,
        "Provisioning", "Waiting for a provisioning worker."),
    Phase.PROVISIONING: PhaseInfo(
        "A worker is going through the provisioning steps.", "info", True, True, Work.PROVISION, False,
        "Provisioning", "Provisioning."),
    Phase.READY: PhaseInfo(
        "Running; the reconciler repairs drift.", "success", False, True, Work.REPAIR, False,
        "Ready", "The vcluster is ready."),
    Phase.FAILED: PhaseInfo(
        "Provisioning stopped at a step that needs a person; Retry resumes it.", "danger", False, True, None,
        False, "ProvisioningFailed", "Provisioning failed; a team member can retry it in the portal."),
    Phase.DELETING: PhaseInfo(
        "A worker is tearing it down.", "warning", True, True, Work.TEARDOWN, True,
        "Deleting", "Tearing the vcluster down."),
    Phase.DELETED: PhaseInfo(
        "Gone from its host; its receipt says what was removed and checked.", "muted", False, False, None, True,
        "DeletedInPortal", "The vcluster was deleted in the portal and is not recreated: "
                           "delete this VirtualCluster and apply it again for a new one."),
    Phase.DELETE_FAILED: PhaseInfo(
        "Teardown gave up after repeated errors; it still holds resources, and Retry resumes it.", "danger",
        False, True, None, True,
        "DeleteFailed", "Teardown failed; a team member can retry it in the portal. The finalizer stays "
                        "until the vcluster is Deleted."),
}


class Event(StrEnum):
    START = "start"  # a worker picks up a Pending vcluster
    READY = "ready"  # every provisioning step succeeded
    FAIL = "fail"  # a permanent error, or transient ones past the limit: a person must look
    RETRY = "retry"  # a person sends it back to the work that failed
    DELETE = "delete"
    TORN_DOWN = "torn_down"  # teardown removed everything and checked it gone


INITIAL = Phase.PENDING

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (Phase.PENDING, Event.START): Phase.PROVISIONING,
    (Phase.PROVISIONING, Event.READY): Phase.READY,
    (Phase.PROVISIONING, Event.FAIL): Phase.FAILED,
    (Phase.FAILED, Event.RETRY): Phase.PENDING,
    (Phase.DELETING, Event.TORN_DOWN): Phase.DELETED,
    (Phase.DELETING, Event.FAIL): Phase.DELETE_FAILED,
    (Phase.DELETE_FAILED, Event.RETRY): Phase.DELETING,
    **{(phase, Event.DELETE): Phase.DELETING
       for phase in (Phase.PENDING, Phase.PROVISIONING, Phase.READY, Phase.FAILED, Phase.DELETE_FAILED)},
}

# The event row each kind of transition leaves on the vcluster (the others leave none).
EVENT_ROWS = {Event.FAIL: EventKind.FAILURE, Event.RETRY: EventKind.RETRY}

# Derived sets, for queries and pages.
IN_PROGRESS = frozenset(p for p, info in PHASES.items() if info.in_progress)
COUNTS_AGAINST_QUOTA = frozenset(p for p, info in PHASES.items() if info.counts_against_quota)
DELETABLE = frozenset(p for p, e in TRANSITIONS if e == Event.DELETE)
RETRYABLE = frozenset(p for p, e in TRANSITIONS if e == Event.RETRY)
WORK = {p: info.work for p, info in PHASES.items() if info.work}

_REQUESTS = {Work.PROVISION: signals.provision_requested, Work.TEARDOWN: signals.teardown_requested}


def target(phase: str, event: Event) -> Phase | None:
    """Where `event` takes a vcluster in `phase`; None if it does not apply there."""
    return TRANSITIONS.get((Phase(phase), event))


def created(vcluster) -> None:
    """A new vcluster (in INITIAL) asks for its work once the creating transaction commits."""
    _request_work(None, Phase(vcluster.phase), vcluster)


def transition(vcluster, event: Event, *, note: str = "", **fields) -> Phase | None:
    """Apply `event` to `vcluster`: a compare-and-set from the phase the instance holds,
    so of two racing writers one wins and the other gets None, as does an event that
    does not apply to that phase; nothing is written then. (A worker's event applies
    only to the phase it worked in; services read the phase under a row lock first, so
    a person's request applies to the phase the vcluster has now.)

    `fields` are written with the phase (message, deleted_at); `note` is the message of
    the event row the transition leaves (EVENT_ROWS), by default the new message. On
    success the instance holds the new phase, and the new phase's work is requested
    once the transaction commits."""
    model = type(vcluster)
    with transaction.atomic():
        before = Phase(vcluster.phase)
        after = target(before, event)
        now = timezone.now()
        if after is None or not model.objects.filter(pk=vcluster.pk, phase=before).update(
                phase=after, updated_at=now, **fields):
            return None
        if event in EVENT_ROWS:
            vcluster.events.create(kind=EVENT_ROWS[event], message=note or fields.get("message", ""))
        _request_work(before, after, vcluster)
    vcluster.phase, vcluster.updated_at = after, now
    for name, value in fields.items():
        setattr(vcluster, name, value)
    return after


def _request_work(before: Phase | None, after: Phase, vcluster) -> None:
    """Ask for provisioning or teardown when a transition starts it (not when a worker
    moves along within it: Pending → Provisioning asks for nothing)."""
    work = PHASES[after].work
    if work in _REQUESTS and (before is None or PHASES[before].work != work):
        signals.send_on_commit(_REQUESTS[work], type(vcluster), vcluster.pk)
