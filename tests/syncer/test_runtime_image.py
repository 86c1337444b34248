"""`python -m syncer` as the runtime image runs it: the stdlib, PyYAML, urllib3,
prometheus_client and the `syncer` package, nothing else (no Django, no kubernetes
client); cryptography only once a pod asks for a certificate, from what the image holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _cffi_backend
import cryptography
import prometheus_client
import urllib3
import yaml

from .conftest import REPO

# And the modules the Cython runtime of PyYAML's C extension registers (_cython_<version>).
ALLOWED = {"syncer", "yaml", "_yaml", "urllib3", "prometheus_client", "__main__", "cython_runtime"}
# Runs `python -m syncer --help` in-process, then prints the top-level modules it imported.
PROGRAM = """
import json, runpy, sys
sys.path[:] = json.loads(sys.argv[1])
sys.argv = ["syncer", "--help"]
try:
    runpy.run_module("syncer", run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert done.code in (0, None), done.code
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def image_path(site: Path) -> list[str]:
    """The stdlib, a site directory holding only what tools/images/build.sh puts in the
    image (yaml, urllib3, prometheus_client, cryptography and the cffi backend), and the
    repository."""
    site.mkdir()
    for package in (yaml, urllib3, prometheus_client, cryptography):
        directory = Path(package.__file__).parent
        (site / directory.name).symlink_to(directory)
    (site / "_yaml").symlink_to(Path(yaml.__file__).parent.parent / "_yaml")
    (site / Path(_cffi_backend.__file__).name).symlink_to(_cffi_backend.__file__)
    stdlib = [entry for entry in sys.path if entry.startswith(sys.base_prefix) and "site-packages" not in entry]
    return [*stdlib, str(site), str(REPO)]


def test_python_m_syncer_imports_only_the_stdlib_yaml_urllib3_and_prometheus_client(tmp_path):
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROGRAM, json.dumps(image_path(tmp_path / "site"))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    usage, _, modules = done.stdout.rpartition("\n[")
    assert "--config" in usage
    imported = set(json.loads("[" + modules))
    assert {name for name in imported - sys.stdlib_module_names - ALLOWED if not name.startswith("_cython_")} == set()
    assert {"syncer", "yaml", "urllib3", "prometheus_client"} <= imported


def test_a_pod_certificate_key_is_made_with_what_the_image_holds(tmp_path):
    program = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
               "from syncer.kinds.pods import podcertificates; "
               "print(all(podcertificates.new_key(t)[0].startswith(b'-----BEGIN PRIVATE KEY') "
               "for t in ('ED25519', 'ECDSAP256', 'RSA3072')))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", program, json.dumps(image_path(tmp_path / "site"))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
