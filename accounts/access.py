"""Who may do what inside a team they can see. Visibility itself is decided by the
for_user() querysets; these checks turn a visible object into 403 for read-only users."""

from django.core.exceptions import PermissionDenied

from .models import Membership, Role, WRITE_ROLES

_UNSET = object()


def role_in(user, team) -> str | None:
    """The user's role in team (None if not a member). Uses the my_role annotation
    from Team.objects.for_user() when present, to avoid a query per row."""
    role = getattr(team, "my_role", _UNSET)
    if role is _UNSET:
        role = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    return role


def can_write(user, team) -> bool:
    return user.is_authenticated and (user.is_staff or role_in(user, team) in WRITE_ROLES)


def can_manage(user, team) -> bool:
    return user.is_authenticated and (user.is_staff or role_in(user, team) == Role.ADMIN)


def require_write(user, team) -> None:
    if not can_write(user, team):
        raise PermissionDenied("Your role in this team is read-only.")


def require_manage(user, team) -> None:
    if not can_manage(user, team):
        raise PermissionDenied("Only team admins and platform admins may do this.")


def require_platform_admin(user) -> None:
    if not (user.is_authenticated and user.is_staff):
        raise PermissionDenied("Only platform admins may do this.")
