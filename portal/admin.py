"""Admin helpers shared by the apps."""

from django.contrib import admin

from .fields import EncryptedTextField


class ReadOnly(admin.ModelAdmin):
    """For looking only: changes go through the portal's service functions, which check
    their input and audit every change. Encrypted fields (kubeconfigs, a vcluster's keys)
    are never shown: the admin would display them decrypted."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_exclude(self, request, obj=None):
        secrets = [f.name for f in self.model._meta.fields if isinstance(f, EncryptedTextField)]
        return [*(super().get_exclude(request, obj) or ()), *secrets]
