from django.contrib import admin

from .models import HostCluster, Placement, TeamPolicy, VClusterEvent


class ReadOnly(admin.ModelAdmin):
    """For looking only: changes go through the portal's service functions, which check
    kubeconfigs and audit every change."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HostCluster)
class HostClusterAdmin(ReadOnly):
    list_display = ["name", "enabled", "created_at"]
    exclude = ["kubeconfig"]


@admin.register(Placement)
class PlacementAdmin(ReadOnly):
    list_display = ["vcluster", "host_cluster", "host_namespace", "runtime", "created_at"]
    search_fields = ["vcluster__name", "host_namespace"]


@admin.register(TeamPolicy)
class TeamPolicyAdmin(ReadOnly):
    list_display = ["team", "pod_security"]


@admin.register(VClusterEvent)
class VClusterEventAdmin(ReadOnly):
    list_display = ["created_at", "vcluster", "kind", "message"]
    list_filter = ["kind"]
