"""Who may do what: the one place access is decided, for pages, API, services and
templates alike (NetBox's RestrictedQuerySet is the model).

A team role grants capabilities on the objects of that team:

    capability  viewer  member  team admin
    VIEW          ✓       ✓        ✓
    WRITE                 ✓        ✓
    MANAGE                         ✓
    PLATFORM    no team role grants it: platform admins only
    OWN         the object's owner only, whoever they are (API tokens)

Platform admins (is_staff) hold every capability but OWN on every team. Roles are
defined here, with what they grant; accounts.models uses them for Membership.

Each model's queryset is a RestrictedQuerySet that declares which capability each
action needs (`actions`) and how to reach the team that grants it (`team_lookup`,
or `owner_lookup` for OWN). Those two facts answer every question:

    Model.objects.restrict(user, action)  the rows the user may act on
    allowed(user, action, target)         may the user act on this object, or (target
                                          a model) on any object of it at all
    require(user, action, target)         the same, raising PermissionDenied (403)
                                          with the reason (denial())

Views look an object up through restrict(user, "view"), so another team's object
answers 404 like a missing one, then require() the action, so a visible object the
role may not change answers 403.
"""

from enum import Enum

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import OuterRef, Subquery


class Role(models.TextChoices):
    ADMIN = "admin", "Team admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Capability(Enum):
    VIEW = "view"
    WRITE = "write"
    MANAGE = "manage"
    PLATFORM = "platform"
    OWN = "own"


VIEW, WRITE, MANAGE, PLATFORM, OWN = Capability

ROLES_WITH = {
    VIEW: frozenset({Role.ADMIN, Role.MEMBER, Role.VIEWER}),
    WRITE: frozenset({Role.ADMIN, Role.MEMBER}),
    MANAGE: frozenset({Role.ADMIN}),
    PLATFORM: frozenset(),
}

DENIED = {
    VIEW: "You are not a member of this team.",
    WRITE: "Your role in this team is read-only.",
    MANAGE: "Only team admins and platform admins may do this.",
    PLATFORM: "Only platform admins may do this.",
    OWN: "This belongs to someone else.",
}


class RestrictedQuerySet(models.QuerySet):
    """A queryset whose model declares its access rules; subclasses set:

    actions       {action: Capability}
    team_lookup   path from the model to the Team granting the capability
                  ("" for Team itself; None for platform objects)
    owner_lookup  path to the owning user, for OWN actions
    """

    actions: dict[str, Capability] = {}
    team_lookup: str | None = None
    owner_lookup: str | None = None

    def capability(self, action: str) -> Capability:
        try:
            return self.actions[action]
        except KeyError:
            raise ValueError(f"{self.model.__name__} has no action {action!r}") from None

    def restrict(self, user, action: str = "view"):
        """The rows `user` may do `action` on. Rows of a team carry `my_role`, the
        user's role in it (None for platform admins outside it), so further checks
        on them (allowed(), a page showing the role) need no query per row."""
        needed = self.capability(action)
        if not user.is_authenticated:
            return self.none()
        if needed is OWN:
            return self.filter(**{self.owner_lookup: user})
        if self.team_lookup is None:
            return self if user.is_staff else self.none()
        my_role = user.memberships.filter(team=OuterRef(self.team_lookup or "pk")).values("role")[:1]
        rows = self.annotate(my_role=Subquery(my_role))
        if user.is_staff:
            return rows
        if needed is PLATFORM:
            return rows.none()
        # One filter() call: the user and the role must match the same membership row.
        prefix = f"{self.team_lookup}__" if self.team_lookup else ""
        return rows.filter(**{f"{prefix}memberships__user": user, f"{prefix}memberships__role__in": ROLES_WITH[needed]})


def _rules(target) -> RestrictedQuerySet:
    model = target if isinstance(target, type) else type(target)
    return model._default_manager.none()


def allowed(user, action: str, target) -> bool:
    """May `user` do `action` on `target`: an object, or a model (then: on any of its
    objects at all, e.g. whether to show the audit log)."""
    rules = _rules(target)
    needed = rules.capability(action)
    if not user.is_authenticated:
        return False
    if needed is OWN:
        return isinstance(target, type) or _follow(target, rules.owner_lookup) == user
    if user.is_staff:
        return True
    if needed is PLATFORM or rules.team_lookup is None:
        return False
    if isinstance(target, type):
        return user.memberships.filter(role__in=ROLES_WITH[needed]).exists()
    return _role(user, target, rules.team_lookup) in ROLES_WITH[needed]


def denial(user, action: str, target) -> str | None:
    """Why `user` may not do `action` on `target`, or None if they may."""
    return None if allowed(user, action, target) else DENIED[_rules(target).capability(action)]


def require(user, action: str, target) -> None:
    """PermissionDenied (403) unless allowed(user, action, target)."""
    reason = denial(user, action, target)
    if reason:
        raise PermissionDenied(reason)


def require_of(actor, action: str, target) -> None:
    """require() for a service function's Actor. The system actor (management commands
    and `make run`, acting for the operator of the machine) is trusted as a platform
    admin is; every other actor is checked as its user."""
    if not actor.is_system:
        require(actor.user, action, target)


def _follow(obj, lookup: str):
    for name in lookup.split("__") if lookup else []:
        obj = getattr(obj, name)
        if obj is None:
            return None
    return obj


_UNSET = object()


def _role(user, obj, team_lookup: str) -> str | None:
    """The user's role in the team of obj (None if not a member): the my_role that
    restrict() annotated when obj came from it, otherwise one query."""
    role = getattr(obj, "my_role", _UNSET)
    if role is _UNSET:
        team = _follow(obj, team_lookup)
        role = None if team is None else user.memberships.filter(team=team).values_list("role", flat=True).first()
    return role
