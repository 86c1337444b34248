from django.contrib import admin

from portal.admin import ReadOnly

from .models import VCluster, VClusterEvent, VClusterStep


class StepInline(admin.TabularInline):
    model = VClusterStep
    extra = 0


@admin.register(VCluster)
class VClusterAdmin(ReadOnly):
    list_display = ["name", "team", "phase", "kubernetes_version", "created_at"]
    list_filter = ["phase"]
    search_fields = ["name", "team__slug"]
    inlines = [StepInline]


@admin.register(VClusterEvent)
class VClusterEventAdmin(ReadOnly):
    list_display = ["created_at", "vcluster", "kind", "message"]
    list_filter = ["kind"]
