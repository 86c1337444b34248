"""Every change to teams, memberships, quotas and tokens goes through here: atomic,
authorised, and audited in the same transaction."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.text import slugify

from portal.errors import invalid
from . import quantities, resources

from . import access
from .audit import Actor, record
from .models import ApiToken, Membership, Role, Team, hash_token

TOKEN_TOUCH_INTERVAL = 60  # seconds; last_used_at is precise to this, to spare a write per request


def create_team(actor: Actor, *, name: str, slug: str = "") -> Team:
    access.require(actor.user, "add", Team)
    name = (name or "").strip()
    slug = (slug or "").strip() or slugify(name)
    errors = {}
    if not name:
        errors["name"] = ["This field is required."]
    elif len(name) > 100:
        errors["name"] = ["At most 100 characters."]
    elif Team.objects.filter(name__iexact=name).exists():
        errors["name"] = [f"A team named \"{name}\" already exists."]
    if name and (slug != slugify(slug) or not slug or len(slug) > 50):
        errors["slug"] = ["Use lowercase letters, digits and '-' (at most 50 characters)."]
    elif Team.objects.filter(slug=slug).exists():
        errors["slug"] = [f"The slug \"{slug}\" is taken."]
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug)
            record(actor, "team.create", team=team, target=team, quota=quota_as_text(team))
    except IntegrityError:  # a concurrent create took the name or slug
        raise invalid("slug", f"The name or slug of \"{name}\" was just taken.") from None
    return team


def quota_as_text(team: Team) -> dict[str, str | int]:
    text = {r.name: r.format(getattr(team, r.field)) for r in resources.RESOURCES}
    return {"max_vclusters": team.max_vclusters, **text}


def parse_quota(raw: dict, *, partial: bool) -> dict[str, int]:
    """Model field values from quota input in Kubernetes notation; raises ValidationError."""
    names = ["max_vclusters", *(r.name for r in resources.RESOURCES)]
    errors = {name: ["This field is required."] for name in names if not partial and name not in raw}
    values, resource_errors = resources.parse_all(raw)
    errors.update(resource_errors)
    if "max_vclusters" in raw:
        try:
            values["max_vclusters"] = _parse_max_vclusters(raw["max_vclusters"])
        except quantities.QuantityError as exc:
            errors["max_vclusters"] = [str(exc)]
    if errors:
        raise ValidationError(errors)
    return values


def _parse_max_vclusters(value) -> int:
    # Zero is allowed here: it freezes a team without touching its vclusters.
    if value in (0, "0"):
        return 0
    return quantities.parse_count(value, maximum=resources.MAX_VCLUSTERS)


def update_quota(actor: Actor, team: Team, raw: dict, *, partial: bool = False) -> Team:
    access.require(actor.user, "change", team)
    values = parse_quota(raw, partial=partial)
    with transaction.atomic():
        locked = Team.objects.select_for_update().get(pk=team.pk)
        before = quota_as_text(locked)
        for field, value in values.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(values))
        record(actor, "quota.update", team=locked, target=locked, before=before, after=quota_as_text(locked))
    return locked


def _parse_role(role) -> Role:
    if role not in Role.values:
        raise invalid("role", f"Must be one of: {', '.join(Role.values)}.")
    return Role(role)


def add_member(actor: Actor, team: Team, *, username: str, role: str) -> Membership:
    access.require(actor.user, "manage", team)
    role = _parse_role(role)
    user = get_user_model().objects.filter(username=username, is_active=True).first() if username else None
    if user is None:
        raise invalid("username", f"No active user named \"{username}\".")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
            record(actor, "member.add", team=team, target=membership, username=username, role=role)
    except IntegrityError:
        raise invalid("username", f"{username} is already a member of {team}.") from None
    return membership


def _require_another_admin(membership: Membership) -> None:
    others = Membership.objects.filter(team=membership.team_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if membership.role == Role.ADMIN and not others.exists():
        raise invalid("role", "A team needs at least one team admin; promote someone else first.")


def change_role(actor: Actor, membership: Membership, *, role: str) -> Membership:
    access.require(actor.user, "manage", membership.team)
    role = _parse_role(role)
    with transaction.atomic():
        membership = get_object_or_404(Membership.objects.select_for_update(), pk=membership.pk)  # removed meanwhile: 404
        if role != Role.ADMIN:
            _require_another_admin(membership)
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record(actor, "member.role", team=membership.team, target=membership,
               username=membership.user.username, before=before, after=role)
    return membership


def remove_member(actor: Actor, membership: Membership) -> None:
    access.require(actor.user, "manage", membership.team)
    with transaction.atomic():
        membership = get_object_or_404(Membership.objects.select_for_update(), pk=membership.pk)  # removed meanwhile: 404
        _require_another_admin(membership)
        record(actor, "member.remove", team=membership.team, target=membership,
               username=membership.user.username, role=membership.role)
        membership.delete()


def ensure_platform_admin(actor: Actor, *, username: str, email: str, password: str) -> bool:
    """Create the first platform admin unless a user of that name exists; True when created.
    An existing user is left alone: its password may have been changed since."""
    if not password:
        raise invalid("password", "The first platform admin needs a password.")
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": email, "is_staff": True, "is_superuser": True})
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
            record(actor, "user.create", target=user, platform_admin=True)
    return created


def create_token(actor: Actor, *, name: str) -> tuple[ApiToken, str]:
    """A new token for the acting user; the plaintext is returned once and never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise invalid("name", "Give the token a name of 1 to 100 characters.")
    token = ApiToken.generate()
    with transaction.atomic():
        api_token = ApiToken.objects.create(user=actor.user, name=name, prefix=token[:12], digest=hash_token(token))
        record(actor, "token.create", target=api_token)
    return api_token, token


def revoke_token(actor: Actor, api_token: ApiToken) -> ApiToken:
    access.require(actor.user, "delete", api_token)
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            record(actor, "token.revoke", target=api_token)
    api_token.refresh_from_db()
    return api_token


def authenticate_token(token: str) -> ApiToken | None:
    api_token = ApiToken.objects.active().select_related("user").filter(digest=hash_token(token)).first()
    if api_token is None:
        return None
    now = timezone.now()
    if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
    return api_token
