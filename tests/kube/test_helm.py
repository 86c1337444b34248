"""`make kube` builds helm from the pinned module and links it beside kubectl."""

import subprocess

from localkube.binaries import helm, versions


def test_make_kube_builds_the_pinned_helm_beside_kubectl():
    done = subprocess.run([helm(), "version", "--template", "{{.Version}} {{.GitTreeState}}"],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout == f"{versions()['HELM_VERSION']} clean", done.stderr
