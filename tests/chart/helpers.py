"""Driving charts/vcportal with the helm `make kube` built, and the images `make images` built."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from localkube.binaries import helm as helm_binary
from localkube.demo import CHART
from localkube.demo import image_values as local_images


def helm(*args, kubeconfig: Path | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env_args = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    done = subprocess.run([str(helm_binary()), *args, *env_args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:2])} failed: {done.stderr}")
    return done


def render(*args: str) -> list[dict]:
    """`helm template` of the chart with the local images and `args`: its objects."""
    done = helm("template", "t", str(CHART), "--namespace", "vcportal", *local_images(), *args)  # a later --namespace wins
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    """`Kind/name` -> the pod spec of every workload."""
    specs = {}
    for obj in objects:
        template = obj.get("spec", {}).get("template")
        if template:
            specs[f"{obj['kind']}/{obj['metadata']['name']}"] = template["spec"]
    return specs
