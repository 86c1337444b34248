"""Settings fail fast, naming the variable, on missing or malformed values; unset
secrets fall back to the files `make run` keeps, so the documented commands work in a
second terminal with no variable set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
# What `make run` keeps in files instead of exporting (portal/settings.py, MAKE_RUN_FILES).
MAKE_RUN_VARIABLES = ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "REDIS_URL")


def environment(var_dir: Path, **overrides) -> dict[str, str]:
    """Our environment without make run's variables and DATABASE_URL (so SQLite in
    `var_dir`, the embedded default), VCPORTAL_VAR_DIR=`var_dir`, then `overrides`
    (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if k not in {*MAKE_RUN_VARIABLES, "DATABASE_URL"}}
    env.update({"VCPORTAL_VAR_DIR": str(var_dir), **overrides})
    return {k: v for k, v in env.items() if v is not None}


def load_settings(var_dir: Path, code: str = "", **overrides) -> subprocess.CompletedProcess:
    """django.setup() in a fresh interpreter, with valid secrets unless `overrides` say otherwise."""
    valid = {"DJANGO_SECRET_KEY": "x", "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    env = environment(var_dir, **{**valid, **overrides})
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_it_starts_with_valid_settings(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set"),
    ({"FIELD_ENCRYPTION_KEYS": None}, "FIELD_ENCRYPTION_KEYS must be set"),
    ({"FIELD_ENCRYPTION_KEYS": "not-a-key"}, "invalid Fernet key"),
    ({"VCPORTAL_DEFAULT_CPU": "-1"}, "VCPORTAL_DEFAULT_CPU"),
    ({"VCPORTAL_DEFAULT_MEMORY": "lots"}, "VCPORTAL_DEFAULT_MEMORY"),
    ({"VCPORTAL_DEFAULT_PODS": "many"}, "VCPORTAL_DEFAULT_PODS"),
    ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
])
def test_it_fails_fast_on_bad_settings(tmp_path, overrides, message):
    """`tmp_path` is an empty var directory, as in production (the image's /var/lib/vcportal)."""
    result = load_settings(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stderr


PRINT_SECRETS = (
    "from django.conf import settings as s; "
    "print(s.SECRET_KEY, ','.join(s.FIELD_ENCRYPTION_KEYS), s.REDIS_URL, s.CELERY_BROKER_URL)"
)


def write_make_run_files(var_dir: Path) -> list[str]:
    values = ["key-from-the-file", Fernet.generate_key().decode(), "redis://127.0.0.1:6399/0"]
    for name, value in zip(("secret-key", "fernet-key", "redis-url"), values):
        (var_dir / name).write_text(value + "\n")
    return values


def test_unset_variables_fall_back_to_the_files_make_run_keeps(tmp_path):
    secret_key, fernet_key, redis_url = write_make_run_files(tmp_path)
    result = load_settings(tmp_path, PRINT_SECRETS, DJANGO_SECRET_KEY=None, FIELD_ENCRYPTION_KEYS=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [secret_key, fernet_key, redis_url, redis_url]


def test_variables_win_over_the_files(tmp_path):
    write_make_run_files(tmp_path)
    fernet_key = Fernet.generate_key().decode()
    result = load_settings(
        tmp_path, PRINT_SECRETS, DJANGO_SECRET_KEY="from-env", FIELD_ENCRYPTION_KEYS=fernet_key,
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-env", fernet_key, "redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"]


def test_each_missing_file_fails_fast_naming_its_variable(tmp_path):
    (tmp_path / "secret-key").write_text("key-from-the-file\n")
    result = load_settings(tmp_path, DJANGO_SECRET_KEY=None, FIELD_ENCRYPTION_KEYS=None)
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must be set" in result.stderr


@pytest.mark.kube
def test_the_readmes_commands_work_in_a_second_terminal(tmp_path):
    """A var directory prepared by make run's own script; then the documented commands,
    as written, in an environment holding none of the variables."""
    var_dir = tmp_path / "var"
    env = environment(var_dir)
    prepared = subprocess.run(
        ["scripts/run.sh", "prepare"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert prepared.returncode == 0, prepared.stderr
    assert {"secret-key", "fernet-key", "redis-url"} <= {p.name for p in var_dir.iterdir()}

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    token = run(".venv/bin/python manage.py create_api_token admin --name laptop")
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.split()) == 1

    nodes = run('"$(tools/kube/build.sh)/kubectl" --kubeconfig '
                '"$(.venv/bin/python manage.py hostcluster start | tail -1)" get nodes')
    try:
        assert nodes.returncode == 0, nodes.stderr
        assert [line.split()[:2] for line in nodes.stdout.splitlines()[1:]] == [
            [f"kwok-node-{i}", "Ready"] for i in range(3)
        ]
        assert (var_dir / "hostcluster" / "admin.kubeconfig").exists()
        status = run(".venv/bin/python manage.py hostcluster status")
        assert status.returncode == 0, status.stderr
    finally:
        stopped = run(".venv/bin/python manage.py hostcluster stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "host cluster stopped"
