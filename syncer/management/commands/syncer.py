"""`python manage.py syncer --config FILE | --vcluster ID`: run one vcluster's syncer."""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncer.config import ConfigError, for_vcluster, load


class Command(BaseCommand):
    help = (
        "Run the syncer of one vcluster until SIGTERM. The process replaces itself with "
        "`python -m syncer` once the config is resolved, so it runs without Django's memory."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", help="a syncer config file (see syncer/config.py)")
        source.add_argument("--vcluster", help="the id of a portal vcluster whose config provisioning stored")
        parser.add_argument("--teardown", action="store_true",
                            help="delete every host object of this vcluster, then exit")
        parser.add_argument("--log-level", default="INFO")

    def handle(self, *args, config=None, vcluster=None, teardown=False, log_level="INFO", **options):
        try:
            resolved = load(config) if config else for_vcluster(vcluster)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        argv = [sys.executable, "-m", "syncer", "--config", str(resolved.path), "--log-level", log_level]
        if teardown:
            argv.append("--teardown")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR),
                                                                        os.environ.get("PYTHONPATH")]))}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)
