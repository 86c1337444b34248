from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api import AuditEventViewSet, MemberViewSet, MeView, TeamViewSet, TokenViewSet
from gateway.api import KubeconfigView
from gateway.urls import urlpatterns as gateway_api
from gateway.views import vcluster_kubeconfig
from provisioning.hostclusters.api import HostClusterViewSet, TeamPolicyView
from vclusters.api import VClusterViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("teams", TeamViewSet, basename="team")
router.register("vclusters", VClusterViewSet, basename="vcluster")
router.register("tokens", TokenViewSet, basename="token")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("host-clusters", HostClusterViewSet, basename="hostcluster")

members = MemberViewSet.as_view({"get": "list", "post": "create"})
member = MemberViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

api_v1 = [
    # The personal kubeconfig (the gateway's), ahead of the router's vcluster routes.
    path("vclusters/<int:pk>/kubeconfig/", KubeconfigView.as_view(), name="vcluster-kubeconfig"),
    *router.urls,
    path("teams/<slug:team_slug>/members/", members, name="member-list"),
    path("teams/<slug:team_slug>/members/<str:username>/", member, name="member-detail"),
    path("teams/<slug:slug>/policy/", TeamPolicyView.as_view(), name="team-policy"),
    path("me/", MeView.as_view(), name="me"),
    *gateway_api,
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
    path("vclusters/<int:pk>/kubeconfig/", vcluster_kubeconfig, name="vcluster-kubeconfig"),
    path("", include("accounts.urls")),
    path("", include("vclusters.urls")),
    path("", include("provisioning.urls")),
]
handler404 = "portal.api.not_found"
