from django.contrib import admin

from portal.admin import ReadOnly

from .models import HostCluster, Placement, TeamPolicy


@admin.register(HostCluster)
class HostClusterAdmin(ReadOnly):
    list_display = ["name", "enabled", "created_at"]


@admin.register(Placement)
class PlacementAdmin(ReadOnly):
    list_display = ["vcluster", "host_cluster", "host_namespace", "runtime", "created_at"]
    search_fields = ["vcluster__name", "host_namespace"]


@admin.register(TeamPolicy)
class TeamPolicyAdmin(ReadOnly):
    list_display = ["team", "pod_security"]
