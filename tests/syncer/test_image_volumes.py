"""An image volume: an OCI image's files mounted read-only, pulled by the host's kubelet.

Allowed because it asks nothing a container could not: the same registry, pull policy
and pull secrets as the pod's images (syncer.kinds.pods.safety).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from controlplane.images import reference
from localkube.testing import kubectl
from tests.kube.helpers import busybox_pod, eventually

pytestmark = [pytest.mark.kube, pytest.mark.realnode]


def test_a_pod_reads_files_from_an_image_volume(make_real_vcluster):
    vc = make_real_vcluster("imagevol")
    pod = busybox_pod("reader", "sleep 3600")
    pod.spec.volumes = [client.V1Volume(name="tools", image=client.V1ImageVolumeSource(
        reference=reference("busybox"), pull_policy="IfNotPresent"))]
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="tools", mount_path="/tools")]
    vc.tenant.core.create_namespaced_pod("default", pod)
    eventually(lambda: vc.tenant.core.read_namespaced_pod("reader", "default").status.phase == "Running",
               timeout=120, what="the pod with an image volume Running")

    listing = kubectl(vc.kubeconfig, "exec", "reader", "--", "ls", "/tools/bin").stdout
    assert "busybox" in listing.split()
    refused = kubectl(vc.kubeconfig, "exec", "reader", "--", "touch", "/tools/x", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
