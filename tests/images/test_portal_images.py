"""The portal's images as `make images` builds them (tools/images/build.sh) hold the same
Python and distributions as Dockerfile and .venv. They run on a real node in
tests/chart/test_install.py: under the `restricted` Pod Security standard with read-only
root filesystems, the bundled PostgreSQL and Redis serve the portal image, which
migrates, serves and provisions; there it also checks what the image holds."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LOCK = REPO / "tools/images/requirements.lock"


def locked() -> list[str]:
    return [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]


def test_the_lock_pins_what_the_tests_run_with():
    done = subprocess.run([sys.executable, REPO / "tools/images/lock.py", "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dockerfile_installs_the_lock_on_the_python_the_tests_run_on():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:(\S+)-slim-bookworm$", dockerfile, re.M)[1] == platform.python_version()
    assert "pip install --no-deps -r /tmp/requirements.lock" in dockerfile
