"""Idempotent seed for `make run`: a platform admin and a demo team with a quota.

The admin's password is generated once and kept in a file under VAR_DIR (mode 0600),
so restarts print the same working credentials."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Role, Team

ADMIN_USERNAME = "admin"
DEMO_TEAM = ("Demo team", "demo")
DEMO_QUOTA = {"max_vclusters": 5, "cpu_millicores": 16_000, "memory_bytes": 32 * 2**30,
              "storage_bytes": 200 * 2**30, "pods": 500}


def _password(path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


class Command(BaseCommand):
    help = "Create (once) a platform admin and a demo team with a quota; print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the portal serves, for the message.")

    def handle(self, url, **options):
        password = _password(settings.VAR_DIR / "admin-password")
        with transaction.atomic():
            admin, created = get_user_model().objects.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            if created or not admin.check_password(password):
                admin.set_password(password)
                admin.save()
            team, _ = Team.objects.get_or_create(slug=DEMO_TEAM[1], defaults={"name": DEMO_TEAM[0], **DEMO_QUOTA})
            Membership.objects.get_or_create(team=team, user=admin, defaults={"role": Role.ADMIN})
        self.stdout.write(f"Log in at {url} as {ADMIN_USERNAME} / {password}")
