"""The gateway's API routes, included under /api/v1/ by portal/urls.py. The personal
kubeconfig downloads (api.KubeconfigView, views.vcluster_kubeconfig) are routed there
too, ahead of the vclusters router and pages, on the URLs the kubeconfig always had."""

from django.urls import path

from . import api

urlpatterns = [
    path("vclusters/<int:pk>/access-log/", api.AccessLogView.as_view(), name="vcluster-access-log"),
    path("vclusters/<int:pk>/activity/", api.ActivityView.as_view(), name="vcluster-activity"),
    path("vclusters/<int:pk>/access-tokens/", api.AccessTokenList.as_view(), name="vcluster-access-tokens"),
    path("vclusters/<int:pk>/access-tokens/<int:token_id>/", api.AccessTokenDetail.as_view(),
         name="vcluster-access-token"),
    path("vclusters/<int:pk>/credentials/", api.CredentialsView.as_view(), name="vcluster-credentials"),
]
