from django.contrib import admin

from portal.admin import ReadOnly

from .models import ApiToken, AuditEvent, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(ReadOnly):
    list_display = ["name", "slug", "max_vclusters", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["digest"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly):
    list_display = ["created_at", "actor_username", "action", "target_name", "team", "ip_address"]
    list_filter = ["action"]
