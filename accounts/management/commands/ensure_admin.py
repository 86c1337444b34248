"""The first platform admin of an installed portal (the chart's migration Job runs it)."""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import SYSTEM
from accounts.services import ensure_platform_admin

PASSWORD_VARIABLE = "VCPORTAL_ADMIN_PASSWORD"


class Command(BaseCommand):
    help = (f"Create a platform admin USERNAME with the password in ${PASSWORD_VARIABLE} (never an argument: "
            "arguments are visible to every process), unless the user exists.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    def handle(self, username, email, **options):
        try:
            created = ensure_platform_admin(SYSTEM, username=username, email=email,
                                            password=os.environ.get(PASSWORD_VARIABLE, ""))
        except ValidationError as exc:
            raise CommandError(f"{' '.join(exc.messages)} Set ${PASSWORD_VARIABLE}.") from None
        self.stdout.write(f"created platform admin {username}" if created
                          else f"platform admin {username} exists; its password was left alone")
