"""Audit events: every change and every kubeconfig download, with its actor and address."""

from dataclasses import dataclass

from django.conf import settings
from django.db import models

from .models import AuditEvent, Team


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where: passed to every service function."""

    user: object
    ip_address: str | None = None

    @classmethod
    def from_request(cls, request) -> "Actor":
        return cls(request.user, client_ip(request))

    @property
    def is_system(self) -> bool:
        return self.user is None


# The portal itself, acting for the operator who runs a management command on its
# machine: audited with no user (as Zulip's commands pass acting_user=None).
SYSTEM = Actor(user=None)


def client_ip(request) -> str | None:
    if settings.VCPORTAL_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # Our proxy appends the address it saw last; earlier entries are client-supplied.
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR") or None


def record(actor: Actor, action: str, *, team: Team | None = None, target: models.Model | None = None, **data) -> AuditEvent:
    user = actor.user if getattr(actor.user, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_username=user.get_username() if user else "",
        ip_address=actor.ip_address,
        action=action,
        team=team,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_name=str(target) if target is not None else "",
        data=data,
    )
