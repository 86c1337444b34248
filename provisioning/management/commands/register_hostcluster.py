"""`python manage.py register_hostcluster NAME --kubeconfig FILE`: add or update a host cluster."""

from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError

from provisioning import hosts


class Command(BaseCommand):
    help = "Register a host cluster (or replace its kubeconfig) so vclusters can be placed on it."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kubeconfig", type=Path, required=True)
        parser.add_argument("--disabled", action="store_true", help="Disable it: place no new vclusters on it. Without this flag an existing host keeps its state.")

    def handle(self, name, kubeconfig, disabled, **options):
        try:
            text = kubeconfig.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {kubeconfig}: {exc.strerror}") from None
        try:
            host, created = hosts.register(name, text, enabled=False if disabled else None)
        except (hosts.HostClusterError, yaml.YAMLError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{'registered' if created else 'updated'} host cluster {host.name}")
