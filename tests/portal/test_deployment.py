"""docker-compose.yml is valid (checked with `docker compose config`, or Debian's
docker-compose where the plugin is missing: no Docker engine runs here)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"DJANGO_SECRET_KEY": "s", "FIELD_ENCRYPTION_KEYS": "k", "POSTGRES_PASSWORD": "p"}


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose found: run `scripts/services.sh install compose`")


def compose_config(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_the_compose_file_is_valid_and_has_every_service():
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {"web", "worker", "beat", "redis", "postgres"}
    web = config["services"]["web"]["environment"]
    assert web["DATABASE_URL"] == "postgres://vcportal:p@postgres:5432/vcportal"
    assert web["REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_the_compose_file_refuses_to_run_without_secrets(missing):
    result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr
