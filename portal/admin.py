"""Admin helpers shared by the apps."""

from django.contrib import admin


class ReadOnly(admin.ModelAdmin):
    """For looking only: changes go through the portal's service functions, which check
    their input and audit every change."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
