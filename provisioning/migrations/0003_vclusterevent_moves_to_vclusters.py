"""VClusterEvent moves to vclusters (whose retry writes events too): provisioning
forgets the model and hands over its table, renamed, rows and all. The model state
is created again by vclusters 0002, which runs after this."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('provisioning', '0002_placement_outlives_host_cluster'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='VClusterEvent', table='vclusters_vclusterevent'),
            ],
            state_operations=[
                migrations.DeleteModel(name='VClusterEvent'),
            ],
        ),
    ]
