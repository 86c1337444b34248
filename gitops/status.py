"""A VirtualCluster's status, built from what the portal knows: pure functions.

Conditions have the metav1.Condition shape. `Ready` is always there; `SpecAccepted`
says whether the spec is what the vcluster was created with (or, before creation,
whether it could be read at all). A condition keeps its lastTransitionTime while its
status stays the same, so the same facts give the same status and the controller
writes only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts import resources
from accounts.quantities import QuantityError
from vclusters import lifecycle

READY = "Ready"
SPEC_ACCEPTED = "SpecAccepted"
REFUSED = "Refused"

# What the portal calls each spec field (the service functions' keyword arguments).
SERVICE_FIELDS = {"kubernetesVersion": "kubernetes_version", **{r.name: r.name for r in resources.RESOURCES}}


def service_fields(spec: dict) -> dict:
    """The spec as create_vcluster's keyword arguments; unknown fields are passed on
    too, so the service refuses them by name."""
    return {SERVICE_FIELDS.get(key, key): value for key, value in (spec or {}).items()}


def immutable_changes(spec: dict, kubernetes_version: str, requested: dict[str, int]) -> list[str]:
    """What the spec asks to change on an existing vcluster, which cannot change yet.
    `requested` holds the vcluster's resources by model field (cpu_millicores, …).
    A field left out of the spec asks for nothing."""
    spec = spec or {}
    problems = []
    wanted = spec.get("kubernetesVersion")
    if wanted is not None and wanted != kubernetes_version:
        problems.append(f"spec.kubernetesVersion cannot change after creation: the vcluster runs "
                        f"{kubernetes_version}, the spec asks for {wanted}.")
    for r in resources.RESOURCES:
        if spec.get(r.name) is None:
            continue
        try:
            asked = r.parse(spec[r.name])
        except QuantityError as exc:
            problems.append(f"spec.{r.name}: {exc}")
            continue
        if asked != requested[r.field]:
            problems.append(f"spec.{r.name} cannot change after creation: the vcluster has "
                            f"{r.format(requested[r.field])}, the spec asks for {r.format(asked)}.")
    return problems


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Observed:
    """What the status reports: a phase, its conditions, and for a vcluster that
    exists, its id, steps and kubeconfig Secret."""

    phase: str
    conditions: tuple[Condition, ...]
    vcluster_id: int | None = None
    steps: tuple[int, int] | None = None
    secret_name: str = ""


def refusal(reason: str, message: str, *, spec_invalid: bool = False) -> Observed:
    """A VirtualCluster the portal did not create a vcluster for (yet)."""
    conditions = [Condition(READY, False, reason, message)]
    if spec_invalid:
        conditions.append(Condition(SPEC_ACCEPTED, False, reason, message))
    return Observed(REFUSED, tuple(conditions))


def of_vcluster(vcluster_id: int, phase: str, message: str, steps: tuple[int, int], secret_name: str,
                spec_problems: list[str], secret_error: str = "") -> Observed:
    """A VirtualCluster whose vcluster exists (or existed: Deleted). `secret_error` says
    why its kubeconfig Secret could not be written."""
    if phase == lifecycle.Phase.READY and secret_error:
        ready = Condition(READY, False, "SecretConflict", secret_error)
        secret_name = ""
    elif phase == lifecycle.Phase.READY:
        ready = Condition(READY, True, lifecycle.PHASES[lifecycle.Phase.READY].gitops_reason, f"The vcluster is ready; its kubeconfig is in Secret {secret_name}.")
    else:
        info = lifecycle.PHASES[lifecycle.Phase(phase)]
        ready = Condition(READY, False, info.gitops_reason, message or info.gitops_message)
    if spec_problems:
        accepted = Condition(SPEC_ACCEPTED, False, "ImmutableField", " ".join(spec_problems))
    else:
        accepted = Condition(SPEC_ACCEPTED, True, "Accepted")
    return Observed(phase, (ready, accepted), vcluster_id, steps, secret_name if phase == lifecycle.Phase.READY else "")


def build(observed: Observed, generation: int, previous: dict | None, now: str) -> dict:
    """The status subresource for `observed`; `previous` is the object's current status
    (lastTransitionTime is kept for conditions whose status did not change)."""
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    conditions = []
    for c in observed.conditions:
        status = "True" if c.ok else "False"
        old = before.get(c.type)
        since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
        conditions.append({"type": c.type, "status": status, "reason": c.reason, "message": c.message,
                           "lastTransitionTime": since, "observedGeneration": generation})
    status = {
        "phase": observed.phase,
        "message": _summary(observed),
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if observed.vcluster_id is not None:
        status["vclusterId"] = observed.vcluster_id
    if observed.steps is not None:
        status["stepsDone"], status["stepsTotal"] = observed.steps
    if observed.secret_name:
        status["kubeconfigSecretRef"] = {"name": observed.secret_name}
    return status


def _summary(observed: Observed) -> str:
    """One line for `kubectl get`: what is wrong, or else what Ready says."""
    problems = [c.message for c in observed.conditions if not c.ok]
    return " ".join(dict.fromkeys(problems)) if problems else observed.conditions[0].message
