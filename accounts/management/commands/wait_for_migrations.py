"""Wait until the database is reachable and every migration of this code is applied:
the chart's pods run it first, so no pod serves before its revision's migration Job
has migrated (and none migrates itself: replicas would race). With --database-only, the
migration Job waits for a database that is still starting instead of failing."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

REPORT_EVERY = 30  # seconds between "still waiting" lines


def unapplied() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


class Command(BaseCommand):
    help = "Wait until every migration is applied (exit 0), or fail after --timeout seconds."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=600)
        parser.add_argument("--interval", type=float, default=2)
        parser.add_argument("--database-only", action="store_true", help="Return once the database answers.")

    def handle(self, timeout, interval, database_only, **options):
        deadline = time.monotonic() + timeout
        reported = 0.0
        while True:
            try:
                connection.ensure_connection()
                waiting = [] if database_only else unapplied()
                reason = f"{len(waiting)} migrations not applied yet, first {waiting[0]}" if waiting else ""
            except DatabaseError as exc:
                connection.close()
                reason = f"the database does not answer ({exc})".strip()
            if not reason:
                self.stdout.write("the database answers" if database_only else "every migration is applied")
                return
            if time.monotonic() > deadline:
                raise CommandError(f"gave up after {timeout:g} s: {reason}")
            if time.monotonic() - reported >= REPORT_EVERY:
                self.stdout.write(f"waiting: {reason}")
                reported = time.monotonic()
            time.sleep(interval)
