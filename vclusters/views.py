from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from accounts import access
from accounts.audit import Actor
from accounts.models import Team
from accounts.presentation import headroom_text, quota_bars
from portal.views import add_service_errors, paginate, query_without_page

from . import services
from .api import VClusterFilter, kubeconfig_filename, placement_of
from .forms import VClusterForm
from .lifecycle import DELETABLE, IN_PROGRESS, RETRYABLE, Phase
from .models import VCluster

DASHBOARD_PAGE_SIZE = 25


def _fragment(request, template: str, fragment: str) -> str:
    """The whole page, or just one partial for an htmx request that is not a boosted navigation."""
    return f"{template}#{fragment}" if request.htmx and not request.htmx.boosted else template


@login_required
@vary_on_headers("HX-Request")
def dashboard(request):
    vclusters = VCluster.objects.restrict(request.user, "view").select_related("team").defer("kubeconfig")
    if not request.GET.get("phase"):
        vclusters = vclusters.exclude(phase=Phase.DELETED)
    filterset = VClusterFilter(request.GET, queryset=vclusters)
    page = paginate(request, filterset.qs if filterset.is_valid() else vclusters.none(), DASHBOARD_PAGE_SIZE)
    visible_teams = Team.objects.restrict(request.user, "view")
    teams = list(visible_teams.filter(memberships__user=request.user))  # the user's own, even for platform admins
    used = services.usage_by_team([t.pk for t in teams])
    context = {
        "page": page,
        "filterset": filterset,
        "query": query_without_page(request),
        "polling": any(v.phase in IN_PROGRESS for v in page),
        "team_cards": [(team, quota_bars(team, used[team.pk])) for team in teams],
        "team_choices": visible_teams.values_list("slug", "name"),
        "phases": Phase.choices,
    }
    return render(request, _fragment(request, "vclusters/dashboard.html", "vcluster-table"), context)


def _headroom_context(team):
    if team is None:
        return {"headroom_team": None}
    return {"headroom_team": team, "headroom": headroom_text(team.headroom())}


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def vcluster_create(request):
    teams = list(Team.objects.restrict(request.user, "create_vcluster"))
    if not teams:
        raise PermissionDenied("You have no team in which you may create vclusters.")
    form = VClusterForm(request.POST or None, teams=teams, initial={"team": request.GET.get("team")})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            team = form.teams[data.pop("team")]
            try:
                vcluster = services.create_vcluster(Actor.from_request(request), team, **data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Vcluster {vcluster.name} created; it is {vcluster.phase}.")
                url = reverse("vcluster-detail", args=[vcluster.pk])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        status = 400
    context = {"form": form, **_headroom_context(form.selected_team())}
    return render(request, _fragment(request, "vclusters/create.html", "create-form"), context, status=status)


@login_required
def headroom(request):
    team = Team.objects.restrict(request.user, "create_vcluster").filter(slug=request.GET.get("team")).first()
    return render(request, "vclusters/create.html#headroom", _headroom_context(team))


def _visible_vcluster(request, pk):
    vclusters = VCluster.objects.restrict(request.user, "view").select_related("team", "created_by")
    return get_object_or_404(vclusters, pk=pk)


@login_required
@vary_on_headers("HX-Request")
def vcluster_detail(request, pk):
    vclusters = (
        VCluster.objects.restrict(request.user, "view")
        .select_related("team", "created_by", "placement__host_cluster")
        .defer("kubeconfig", "placement__host_cluster__kubeconfig")
    )
    vcluster = get_object_or_404(vclusters, pk=pk)
    context = {
        "vcluster": vcluster,
        "steps": vcluster.steps.all(),
        "events": vcluster.events.all(),
        "placement": placement_of(vcluster),
        "deletable": vcluster.phase in DELETABLE and access.allowed(request.user, "delete", vcluster),
        "retryable": vcluster.phase in RETRYABLE and access.allowed(request.user, "change", vcluster),
        "downloadable": vcluster.phase == Phase.READY and access.allowed(request.user, "connect", vcluster),
        "break_glass": vcluster.phase == Phase.READY
        and access.allowed(request.user, "download_admin_kubeconfig", vcluster),
        "kubeconfig_filename": kubeconfig_filename(vcluster, request.user.get_username()),
    }
    return render(request, _fragment(request, "vclusters/detail.html", "live-status"), context)


@login_required
@require_POST
def vcluster_retry(request, pk):
    vcluster = _visible_vcluster(request, pk)
    access.require(request.user, "change", vcluster)
    try:
        services.retry_vcluster(Actor.from_request(request), vcluster)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Retrying {vcluster.name}: it resumes at the step that failed.")
    return redirect("vcluster-detail", pk=vcluster.pk)


@login_required
@require_http_methods(["GET", "POST"])
def vcluster_delete(request, pk):
    vcluster = _visible_vcluster(request, pk)
    access.require(request.user, "delete", vcluster)
    if request.method == "POST":
        try:
            services.delete_vcluster(Actor.from_request(request), vcluster)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Deleting {vcluster.name}.")
        return redirect("vcluster-detail", pk=vcluster.pk)
    return render(request, "vclusters/delete.html", {"vcluster": vcluster})
