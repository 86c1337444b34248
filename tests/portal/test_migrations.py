"""Moving a model between apps keeps its rows: VClusterEvent, from provisioning to
vclusters (provisioning 0003, vclusters 0002)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_THE_MOVE = [("provisioning", "0002_placement_outlives_host_cluster"), ("vclusters", "0001_initial")]


def migrate(targets):
    """Migrate to targets; the models as they are there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_vcluster_events_survive_the_move_to_vclusters():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = migrate(BEFORE_THE_MOVE)
    try:
        team = old.get_model("accounts", "Team").objects.create(name="Alpha", slug="alpha")
        vcluster = old.get_model("vclusters", "VCluster").objects.create(
            team=team, name="web", kubernetes_version="v1.37.2", cpu_millicores=1000, memory_bytes=2**30,
            storage_bytes=2**30, pods=10,
        )
        event = old.get_model("provisioning", "VClusterEvent").objects.create(
            vcluster=vcluster, kind="repair", message="Brought back to the desired state: Namespace vc-alpha-web",
        )
    finally:
        new = migrate(latest)
    Event = new.get_model("vclusters", "VClusterEvent")
    moved = Event.objects.get(pk=event.pk)
    assert (moved.vcluster_id, moved.kind, moved.message) == (vcluster.pk, event.kind, event.message)
    assert Event.objects.create(vcluster_id=vcluster.pk, kind="retry", message="next").pk > event.pk
