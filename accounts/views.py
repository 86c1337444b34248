from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.views import add_service_errors, paginate, query_without_page

from . import access, extensions, services
from .api import quota_payload, visible_team
from .audit import Actor
from .forms import MemberForm, QuotaForm, RoleForm, TeamForm, TokenForm
from .models import ApiToken, AuditEvent, Membership, Team
from .presentation import quota_bars


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request):
    form = TeamForm(request.POST or None)
    status = 200
    if request.method == "POST":
        access.require(request.user, "add", Team)
        if form.is_valid():
            try:
                team = services.create_team(Actor.from_request(request), **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Team {team.name} created. Set its quota and add a team admin.")
                return redirect("team-detail", slug=team.slug)
        status = 400
    teams = list(Team.objects.restrict(request.user, "view"))
    used = extensions.usage_by_team([t.pk for t in teams])
    rows = [(team, quota_bars(team, used[team.pk]), access.allowed(request.user, "change", team)) for team in teams]
    context = {"rows": rows, "form": form, "can_add": access.allowed(request.user, "add", Team)}
    return render(request, "accounts/team_list.html", context, status=status)


@login_required
def team_detail(request, slug):
    team = visible_team(request, slug)
    context = {
        "team": team,
        "memberships": team.memberships.select_related("user"),
        "bars": quota_bars(team, team.usage()),
        "can_manage": access.allowed(request.user, "manage", team),
        "can_change": access.allowed(request.user, "change", team),
        "member_form": MemberForm(),
        "role_choices": RoleForm.base_fields["role"].choices,
        "sections": extensions.team_sections(request, team),
    }
    return render(request, "accounts/team_detail.html", context)


def _membership(request, slug, pk) -> Membership:
    team = visible_team(request, slug)
    return get_object_or_404(team.memberships.select_related("user", "team"), pk=pk)


def _flash_errors(request, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


@login_required
@require_POST
def member_add(request, slug):
    team = visible_team(request, slug)
    access.require(request.user, "manage", team)
    form = MemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a username and a role.")
        return redirect("team-detail", slug=slug)
    try:
        services.add_member(Actor.from_request(request), team, **form.cleaned_data)
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"Added {form.cleaned_data['username']}.")
    return redirect("team-detail", slug=slug)


@login_required
@require_POST
def member_role(request, slug, pk):
    membership = _membership(request, slug, pk)
    form = RoleForm(request.POST)
    access.require(request.user, "manage", membership.team)
    try:
        if not form.is_valid():
            raise ValidationError({"role": ["Choose a role."]})
        services.change_role(Actor.from_request(request), membership, role=form.cleaned_data["role"])
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']}.")
    return redirect("team-detail", slug=slug)


@login_required
@require_POST
def member_remove(request, slug, pk):
    membership = _membership(request, slug, pk)
    try:
        services.remove_member(Actor.from_request(request), membership)
    except ValidationError as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, f"Removed {membership.user.username}.")
    return redirect("team-detail", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def quota_edit(request, slug):
    team = visible_team(request, slug)
    access.require(request.user, "change", team)
    current = quota_payload(team)
    form = QuotaForm(request.POST or None, initial=current)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.update_quota(Actor.from_request(request), team, form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Quota of {team.name} updated.")
                return redirect("team-detail", slug=slug)
        status = 400
    return render(request, "accounts/quota_edit.html", {"team": team, "form": form, "usage": current["usage"]},
                  status=status)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenForm(request.POST or None)
    new_token = None
    status = 200
    if request.method == "POST":
        try:
            if not form.is_valid():
                raise ValidationError({"name": ["Give the token a name."]})
            api_token, new_token = services.create_token(Actor.from_request(request), name=form.cleaned_data["name"])
            form = TokenForm()
        except ValidationError as exc:
            add_service_errors(form, exc)
            status = 400
    context = {"form": form, "new_token": new_token, "tokens": ApiToken.objects.restrict(request.user, "view")}
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request, pk):
    api_token = get_object_or_404(ApiToken.objects.restrict(request.user, "delete"), pk=pk)
    services.revoke_token(Actor.from_request(request), api_token)
    messages.success(request, f"Token {api_token.name} revoked.")
    return redirect("tokens")


@login_required
def audit_log(request):
    access.require(request.user, "view", AuditEvent)
    events = AuditEvent.objects.restrict(request.user, "view")
    team = request.GET.get("team")
    if team:
        events = events.filter(team__slug=team)
    page = paginate(request, events.select_related("team"), 50)
    teams = Team.objects.restrict(request.user, "view").values_list("slug", "name")
    return render(request, "accounts/audit_log.html", {"page": page, "teams": teams, "team": team,
                                                        "query": query_without_page(request)})
