"""VClusterEvent, moved from provisioning: its table (renamed by provisioning 0003)
and rows are already there, so only the model state is created."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vclusters', '0001_initial'),
        ('provisioning', '0003_vclusterevent_moves_to_vclusters'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='VClusterEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('repair', 'Repair'), ('retry', 'Retry'), ('failure', 'Failure')], max_length=10)),
                        ('message', models.TextField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('vcluster', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='vclusters.vcluster')),
                    ],
                    options={
                        'ordering': ['-created_at', '-id'],
                    },
                ),
            ],
        ),
    ]
