"""The portal's images as `make images` builds them (tools/images/build.sh): the same
Python and distributions as Dockerfile and .venv, and on a real node under the
`restricted` Pod Security standard with read-only root filesystems, the bundled
PostgreSQL and Redis serve the portal image, which migrates a fresh database."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from controlplane.images import reference
from tests.kube.helpers import eventually, logs, new_namespace

REPO = Path(__file__).resolve().parents[2]

LOCK = REPO / "tools/images/requirements.lock"
PASSWORD = "trial-password"


def locked() -> list[str]:
    return [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]


def test_the_lock_pins_what_the_tests_run_with():
    done = subprocess.run([sys.executable, REPO / "tools/images/lock.py", "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dockerfile_installs_the_lock_on_the_python_the_tests_run_on():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:(\S+)-slim-bookworm$", dockerfile, re.M)[1] == platform.python_version()
    assert "pip install --no-deps -r /tmp/requirements.lock" in dockerfile


# Runs in the portal image: what it holds, and that it migrates and reaches Redis.
PROGRAM = """
import json, os, platform
from importlib import metadata
import django, redis
from django.core.management import call_command
from packaging.utils import canonicalize_name
django.setup()
call_command("migrate", verbosity=0)
call_command("check")
print(json.dumps({
    "python": platform.python_version(),
    "distributions": sorted(f"{canonicalize_name(d.name)}=={d.version}" for d in metadata.distributions()),
    "uid": os.getuid(),
    "shell": os.path.exists("/bin/sh"),
    "static": os.path.exists("/app/staticfiles/staticfiles.json"),
    "redis": redis.Redis.from_url(os.environ["REDIS_URL"]).ping(),
}))
"""


def restricted_pod(name: str, image: str, *, command=None, args=None, env=None, writable=(), probe=None):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True, fs_group=65532, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            volumes=[client.V1Volume(name=f"w{i}", empty_dir={}) for i, _ in enumerate(writable)],
            containers=[client.V1Container(
                name="main", image=image, command=command, args=args,
                env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
                volume_mounts=[client.V1VolumeMount(name=f"w{i}", mount_path=p) for i, p in enumerate(writable)],
                readiness_probe=probe and client.V1Probe(_exec=client.V1ExecAction(command=probe), period_seconds=1),
                security_context=client.V1SecurityContext(
                    allow_privilege_escalation=False, read_only_root_filesystem=True,
                    capabilities=client.V1Capabilities(drop=["ALL"]),
                ),
            )],
        ),
    )


@pytest.mark.kube
@pytest.mark.realnode
def test_the_portal_image_migrates_the_bundled_postgresql_and_reaches_the_bundled_redis(real_host_cluster):
    core = client.CoreV1Api(real_host_cluster.api_client())
    namespace = new_namespace(core, "images", {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"})
    core.create_namespaced_pod(namespace, restricted_pod(
        "postgresql", reference("postgresql"), writable=["/var/lib/postgresql", "/tmp"],
        env={"POSTGRES_USER": "vcportal", "POSTGRES_DB": "vcportal", "POSTGRES_PASSWORD": PASSWORD},
        probe=["pg_isready", "-h", "127.0.0.1", "-U", "vcportal", "-d", "vcportal"]))
    core.create_namespaced_pod(namespace, restricted_pod(
        "redis", reference("redis"), args=["--dir", "/data", "--save", "", "--requirepass", "$(REDISCLI_AUTH)"],
        writable=["/data"], env={"REDISCLI_AUTH": PASSWORD}, probe=["redis-cli", "ping"]))
    address = {name: eventually(
        lambda name=name: (p := core.read_namespaced_pod(name, namespace)).status.conditions
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions) and p.status.pod_ip,
        timeout=180, what=f"{name} to be ready") for name in ("postgresql", "redis")}

    core.create_namespaced_pod(namespace, restricted_pod(
        "portal", reference("vcportal"), command=["python3", "-c", PROGRAM],
        writable=["/var/lib/vcportal", "/tmp"], env={
            "DJANGO_SECRET_KEY": "test-only", "FIELD_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=",
            "DATABASE_URL": f"postgres://vcportal:{PASSWORD}@{address['postgresql']}:5432/vcportal",
            "REDIS_URL": f"redis://:{PASSWORD}@{address['redis']}:6379/0", "DJANGO_SETTINGS_MODULE": "portal.settings"}))
    pod = eventually(lambda: (p := core.read_namespaced_pod("portal", namespace)).status.phase in ("Succeeded", "Failed")
                     and p, timeout=240, what="the portal pod to finish")
    output = logs(real_host_cluster, namespace, "portal")
    assert pod.status.phase == "Succeeded", output
    found = json.loads(output.strip().splitlines()[-1])
    assert found.pop("distributions") == sorted(locked())
    assert found == {"python": platform.python_version(), "uid": 65532, "shell": False, "static": True, "redis": True}
