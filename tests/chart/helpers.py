"""Driving charts/vcportal with the helm `make kube` built, and the images `make images` built."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from controlplane.images import reference
from localkube.binaries import helm as helm_binary

CHART = Path(__file__).resolve().parents[2] / "charts" / "vcportal"


def helm(*args, kubeconfig: Path | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env_args = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    done = subprocess.run([str(helm_binary()), *args, *env_args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:2])} failed: {done.stderr}")
    return done


def tag(name: str) -> str:
    return reference(name).rsplit(":", 1)[1]


def local_images() -> list[str]:
    """--set arguments naming the images in the local registry."""
    registry = reference("vcportal").split("/", 1)[0]
    return ["--set", f"image.registry={registry}", "--set", f"image.tag={tag('vcportal')}",
            "--set", f"database.bundled.image.tag={tag('postgresql')}", "--set", f"redis.bundled.image.tag={tag('redis')}",
            "--set", f"hostCluster.runtimeImage={reference('vcluster-runtime')}",
            "--set", f"hostCluster.clusterDNSImage={reference('coredns')}"]


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
