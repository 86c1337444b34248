"""The vcluster runtime image (tools/images/build.sh) runs its programs on a real node
under the `restricted` Pod Security standard, as the control-plane pod will: a
non-root user, no capabilities, the RuntimeDefault seccomp profile and a read-only
root filesystem.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from localkube.binaries import versions
from controlplane.images import reference
from tests.kube.helpers import eventually, logs, new_namespace

pytestmark = [pytest.mark.kube, pytest.mark.realnode]

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture(scope="module")
def restricted_namespace(real_host_cluster) -> str:
    return new_namespace(client.CoreV1Api(real_host_cluster.api_client()), "runtime", RESTRICTED)


def restricted_pod(name: str, command: list[str]) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[client.V1Container(
                name="main", image=reference("vcluster-runtime"), command=command,
                security_context=client.V1SecurityContext(
                    allow_privilege_escalation=False, read_only_root_filesystem=True,
                    capabilities=client.V1Capabilities(drop=["ALL"]),
                ),
            )],
        ),
    )


@pytest.mark.parametrize(("name", "command", "expected"), [
    ("apiserver", ["kube-apiserver", "--version"], f"Kubernetes {versions()['KUBE_VERSION']}"),
    ("controller-manager", ["kube-controller-manager", "--version"], f"Kubernetes {versions()['KUBE_VERSION']}"),
    ("kine", ["kine", "--version"], f"kine version {versions()['KINE_VERSION']}"),
    # cryptography is there for pod certificates' keys: made once, as a pod's first request does.
    ("syncer", ["python3", "-c", "import syncer.__main__, yaml, urllib3, os; from syncer.kinds.pods import "
                "podcertificates as p; p.new_key('ECDSAP256'); print('imports ok as', os.getuid())"],
     "imports ok as 65532"),
])
def test_the_runtime_image_runs_its_programs_under_the_restricted_standard(
        real_host_cluster, restricted_namespace, name, command, expected):
    core = client.CoreV1Api(real_host_cluster.api_client())
    core.create_namespaced_pod(restricted_namespace, restricted_pod(name, command))

    pod = eventually(
        lambda: (p := core.read_namespaced_pod(name, restricted_namespace)).status.phase in ("Succeeded", "Failed") and p,
        timeout=120, what=f"pod {name} to finish",
    )

    terminated = pod.status.container_statuses[0].state.terminated
    output = logs(real_host_cluster, restricted_namespace, name)
    assert (pod.status.phase, terminated.exit_code) == ("Succeeded", 0), output
    assert expected in output
