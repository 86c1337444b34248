"""The Django admin only looks: every change goes through the portal's services, which
check and audit it. And it never shows a secret: the admin would display an encrypted
field decrypted (kubeconfigs, a vcluster's CA and service-account keys)."""

from django.contrib import admin

from portal.fields import EncryptedTextField
from provisioning.models import Placement
from tests.portal.conftest import make_host, make_vcluster

MARKER = "admin-must-never-show-this"


def test_every_registered_model_is_read_only_and_hides_encrypted_fields(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    assert admin.site._registry
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("accounts", "vclusters", "provisioning", "gitops"):
            continue
        assert not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)
                    or model_admin.has_delete_permission(request)), model.__name__
        secrets = {f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)}
        assert not secrets & set(model_admin.get_fields(request)), model.__name__


def test_a_placements_page_shows_it_but_not_its_keys(world, admin_client):
    placement = Placement.objects.create(
        vcluster=make_vcluster(world.alpha, "keys"), host_cluster=make_host("east"), host_namespace="vc-keys",
        control_plane_state=f'{{"keys": {{"ca.key": "{MARKER}"}}}}')
    page = admin_client.get(f"/django-admin/provisioning/placement/{placement.pk}/change/").content.decode()
    assert "vc-keys" in page and MARKER not in page
    assert admin_client.post(f"/django-admin/provisioning/placement/{placement.pk}/delete/").status_code == 403
