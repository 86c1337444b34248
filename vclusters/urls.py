from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("vclusters/new/", views.vcluster_create, name="vcluster-create"),
    path("vclusters/new/headroom/", views.headroom, name="vcluster-headroom"),
    path("vclusters/<int:pk>/", views.vcluster_detail, name="vcluster-detail"),
    path("vclusters/<int:pk>/delete/", views.vcluster_delete, name="vcluster-delete"),
    path("vclusters/<int:pk>/retry/", views.vcluster_retry, name="vcluster-retry"),
]
