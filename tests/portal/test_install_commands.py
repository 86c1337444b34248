"""What the Helm chart's pods run besides the server: the probes' endpoints, the first
platform admin, and the wait for the revision's migrations."""

import os
import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection

from accounts.models import AuditEvent


@pytest.mark.django_db
def test_the_probes_answer_whatever_host_they_name(client):
    assert client.get("/healthz", HTTP_HOST="10.244.0.7:8000").content == b"ok\n"
    assert client.get("/readyz", HTTP_HOST="10.244.0.7:8000").status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="10.244.0.7:8000").status_code == 400  # the rest still checks


@pytest.mark.django_db
def test_readiness_fails_while_the_database_does_not_answer(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")
    monkeypatch.setattr(connection, "cursor", refuse)
    answer = client.get("/readyz")
    assert (answer.status_code, answer.content) == (503, b"the database does not answer\n")
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_ensure_admin_creates_the_first_admin_once_and_never_resets_its_password(monkeypatch):
    monkeypatch.setenv("VCPORTAL_ADMIN_PASSWORD", "first-password")
    out = StringIO()
    call_command("ensure_admin", "admin", "--email", "ops@example.com", stdout=out)
    admin = get_user_model().objects.get(username="admin")
    assert (admin.is_superuser, admin.email, admin.check_password("first-password")) == (True, "ops@example.com", True)
    assert AuditEvent.objects.filter(action="user.create", target_name="admin").count() == 1

    monkeypatch.setenv("VCPORTAL_ADMIN_PASSWORD", "rotated-in-the-secret")
    call_command("ensure_admin", "admin", stdout=out)
    admin.refresh_from_db()
    assert admin.check_password("first-password")
    assert out.getvalue().splitlines() == ["created platform admin admin",
                                           "platform admin admin exists; its password was left alone"]
    assert AuditEvent.objects.filter(action="user.create").count() == 1


@pytest.mark.django_db
def test_ensure_admin_refuses_without_a_password(monkeypatch):
    monkeypatch.delenv("VCPORTAL_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="VCPORTAL_ADMIN_PASSWORD"):
        call_command("ensure_admin", "admin")
    assert not get_user_model().objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_wait_for_migrations_returns_once_all_are_applied_and_names_what_is_missing():
    out = StringIO()
    call_command("wait_for_migrations", "--timeout", "5", stdout=out)
    assert out.getvalue() == "every migration is applied\n"

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'accounts' AND name = '0001_initial'")
    with pytest.raises(CommandError, match=r"gave up after 0.3 s: \d+ migrations not applied yet, first accounts.0001_initial"):
        call_command("wait_for_migrations", "--timeout", "0.3", "--interval", "0.1", stdout=StringIO())


@pytest.mark.django_db
def test_wait_for_migrations_database_only_returns_once_the_database_answers(monkeypatch):
    out = StringIO()
    call_command("wait_for_migrations", "--database-only", "--timeout", "5", stdout=out)
    assert out.getvalue() == "the database answers\n"

    def refuse():
        raise OperationalError("connection refused")
    monkeypatch.setattr(connection, "ensure_connection", refuse)
    with pytest.raises(CommandError, match=r"gave up after 0.2 s: the database does not answer \(connection refused\)"):
        call_command("wait_for_migrations", "--database-only", "--timeout", "0.2", "--interval", "0.1", stdout=StringIO())


def test_wait_for_migrations_gives_up_on_a_connection_that_never_answers():
    """A database address that takes the connection and never answers (like a SYN pinned
    to a stale conntrack entry): each attempt times out and the next is a new one, so the
    command keeps its own deadline instead of hanging in the first attempt."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": f"postgres://vcportal:secret@127.0.0.1:{port}/vcportal"}
        done = subprocess.run([sys.executable, "manage.py", "wait_for_migrations", "--database-only",
                               "--timeout", "1", "--interval", "0.1"],
                              cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "gave up after 1 s: the database does not answer" in done.stderr
    assert "timeout expired" in done.stderr
