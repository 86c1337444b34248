from django.contrib import admin

from portal.admin import ReadOnly

from .models import VirtualClusterBinding


@admin.register(VirtualClusterBinding)
class VirtualClusterBindingAdmin(ReadOnly):
    list_display = ["vcluster", "cluster", "namespace", "name", "uid", "created_at"]
    search_fields = ["vcluster__name", "namespace", "name"]
