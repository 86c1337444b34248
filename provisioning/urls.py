from django.urls import path

from .hostclusters import views

urlpatterns = [
    path("host-clusters/", views.host_cluster_list, name="host-cluster-list"),
    path("host-clusters/<slug:name>/", views.host_cluster_edit, name="host-cluster-edit"),
    path("host-clusters/<slug:name>/toggle/", views.host_cluster_toggle, name="host-cluster-toggle"),
    path("host-clusters/<slug:name>/delete/", views.host_cluster_delete, name="host-cluster-delete"),
    path("teams/<slug:slug>/policy/", views.team_policy, name="team-policy-edit"),
]
