from pathlib import Path

from django.core.management.base import BaseCommand

from gateway.tls import DEFAULT_NAMES, ensure_certificate


class Command(BaseCommand):
    help = ("Create (once) a private CA and a serving certificate for the gateway in DIR; "
            "prints the directory. Serve with uvicorn --ssl-certfile DIR/tls.crt --ssl-keyfile DIR/tls.key "
            "and set VCPORTAL_GATEWAY_CA_FILE=DIR/ca.crt.")

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--name", action="append", dest="names",
                            help=f"host name or address the certificate is for (default: {', '.join(DEFAULT_NAMES)})")

    def handle(self, directory: Path, names, **options):
        ensure_certificate(directory, tuple(names or DEFAULT_NAMES))
        self.stdout.write(str(directory))
