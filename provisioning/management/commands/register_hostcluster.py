"""`python manage.py register_hostcluster NAME --kubeconfig FILE` (or `--in-cluster`: the
cluster the portal runs in, with its own ServiceAccount): add or update a host
cluster through the same audited service as the pages and the API, as the system actor:
the kubeconfig gets the same checks (no file references, exec or auth-provider plugins;
the cluster must answer), and so do the runtime options. An option left out keeps an
existing host's value and gives a new one the default."""

import argparse
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import SYSTEM
from provisioning.hostclusters import services


class Command(BaseCommand):
    help = "Register a host cluster (or replace its kubeconfig) so vclusters can be placed on it."

    def add_arguments(self, parser):
        parser.add_argument("name")
        credentials = parser.add_mutually_exclusive_group(required=True)
        credentials.add_argument("--kubeconfig", type=Path)
        credentials.add_argument("--in-cluster", action="store_true",
                                 help="The cluster this process runs in, reached with its pod's ServiceAccount.")
        parser.add_argument("--disabled", action="store_true", help="Disable it: place no new vclusters on it. Without this flag an existing host keeps its state.")
        # No argparse choices: the service checks the values, so every bad one is
        # reported at once, with the API's messages.
        for field in services.RUNTIME_FIELDS:
            parser.add_argument(f"--{field.replace('_', '-')}", dest=field, help=services.HELP[field])
        parser.add_argument("--tenant-policy", type=_json_object, metavar="JSON",
                            help="A new host cluster's tenant policy (docs/syncer.md); an existing one keeps its own.")

    def handle(self, name, kubeconfig, in_cluster, disabled, tenant_policy, **options):
        try:
            text = "" if in_cluster else kubeconfig.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {kubeconfig}: {exc.strerror}") from None
        runtime = {field: options[field] for field in services.RUNTIME_FIELDS if options[field] is not None}
        try:
            host, created = services.register_or_replace_kubeconfig(
                SYSTEM, name=name, kubeconfig=text, in_cluster=in_cluster, enabled=False if disabled else None,
                new_tenant_policy=tenant_policy, **runtime
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())) from None
        self.stdout.write(f"{'registered' if created else 'updated'} host cluster {host.name}")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object, e.g. {\"ingress_hosts\": [\"*.{team}.apps.example.com\"]}")
    return value
