"""Settings fail fast, naming the variable, on missing or malformed values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"FIELD_ENCRYPTION_KEYS", "DJANGO_SECRET_KEY"}}
    env.update({"DJANGO_SECRET_KEY": "x", "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), **overrides})
    env = {k: v for k, v in env.items() if v is not None}
    code = "import django; django.setup()"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_it_starts_with_valid_settings():
    result = load_settings()
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
def test_it_fails_fast_on_bad_settings(overrides, message):
    result = load_settings(**overrides)
    assert result.returncode != 0
    assert message in result.stderr
