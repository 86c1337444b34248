"""Triggers that NOTIFY vcportal_gateway_access when anything the gateway's request check
reads changes (see gateway.grants). PostgreSQL only: elsewhere the gateway keeps nothing."""

from django.conf import settings
from django.db import migrations

CHANNEL = "vcportal_gateway_access"
FUNCTION = "vcportal_gateway_access_changed"
WATCHED = [("gateway", "AccessToken"), ("accounts", "Membership"), ("accounts", "Team"), ("vclusters", "VCluster"),
           tuple(settings.AUTH_USER_MODEL.split("."))]


def _tables(apps):
    return [apps.get_model(app, model)._meta.db_table for app, model in WATCHED]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    for table in _tables(apps):
        schema_editor.execute(
            f'CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{table}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _tables(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {FUNCTION} ON "{table}"')
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0001_initial"),
        ("accounts", "0001_initial"),
        ("vclusters", "0003_delete_failed_phase"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
