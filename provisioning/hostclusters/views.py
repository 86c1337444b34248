from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts import access
from accounts.audit import Actor
from accounts.models import Team
from portal.views import add_service_errors

from . import services
from .api import host_clusters_for
from .forms import HostClusterEditForm, HostClusterForm, PodSecurityForm
from ..models import HostCluster, PodSecurity


def _host(request, name):
    return get_object_or_404(host_clusters_for(request.user), name=name)


@login_required
@require_http_methods(["GET", "POST"])
def host_cluster_list(request):
    access.require(request.user, "view", HostCluster)
    form = HostClusterForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                host = services.register_host_cluster(Actor.from_request(request), **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Host cluster {host.name} registered.")
                return redirect("host-cluster-list")
        status = 400
    context = {"hosts": host_clusters_for(request.user), "form": form}
    return render(request, "provisioning/host_clusters.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def host_cluster_edit(request, name):
    host = _host(request, name)
    initial = {"enabled": host.enabled, "capacity_notes": host.capacity_notes,
               "teams": [t.slug for t in host.teams.all()], "tenant_policy": host.tenant_policy,
               **{field: getattr(host, field) for field in services.RUNTIME_FIELDS}}
    form = HostClusterEditForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.update_host_cluster(Actor.from_request(request), host, **form.changes())
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Host cluster {host.name} updated.")
                return redirect("host-cluster-list")
        status = 400
    placements = (
        services.live_placements(host).select_related("vcluster__team")
        .only("host_namespace", "runtime", "vcluster__name", "vcluster__phase", "vcluster__team__name")
        .order_by("vcluster__team__name", "vcluster__name")
    )
    context = {"host": host, "form": form, "placements": placements}
    return render(request, "provisioning/host_cluster_edit.html", context, status=status)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def host_cluster_toggle(request, name):
    """Enable or disable; htmx swaps just the row, plain forms get the page again."""
    host = _host(request, name)
    services.set_host_cluster_enabled(Actor.from_request(request), host, not host.enabled)
    if request.htmx:
        return render(request, "provisioning/host_clusters.html#host-row", {"host": _host(request, name)})
    messages.success(request, f"Host cluster {host.name} {'disabled' if host.enabled else 'enabled'}.")
    return redirect("host-cluster-list")


@login_required
@require_POST
def host_cluster_delete(request, name):
    host = _host(request, name)
    try:
        services.delete_host_cluster(Actor.from_request(request), host)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("host-cluster-edit", name=name)
    messages.success(request, f"Host cluster {name} removed.")
    return redirect("host-cluster-list")


@login_required
@require_POST
def team_policy(request, slug):
    team = get_object_or_404(Team.objects.restrict(request.user, "view"), slug=slug)
    access.require(request.user, "change", team)
    form = PodSecurityForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError({"pod_security": ["Choose baseline or restricted."]})
        services.set_pod_security(Actor.from_request(request), team, form.cleaned_data["pod_security"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Pod security of {team.name} is now {form.cleaned_data['pod_security']}.")
    return redirect("team-detail", slug=slug)


def team_policy_section(request, team) -> dict:
    """The pod security section of a team's page (accounts.extensions)."""
    return {
        "pod_security": services.pod_security_of(team),
        "choices": PodSecurity.choices,
        "can_change": access.allowed(request.user, "change", team),
    }
