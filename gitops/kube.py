"""The controller's one way to the management cluster: the CRD, VirtualCluster
objects (status, finalizers) and the kubeconfig Secrets it writes next to them."""

from __future__ import annotations

import base64
import time

from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi

from portal.kubeapi import REQUEST_TIMEOUT, read_or_none
from provisioning.hostkube import HostKube

from . import crd

MERGE_PATCH = "application/merge-patch+json"
SECRET_KEY = "config"
CRD_ESTABLISH_TIMEOUT = 30


class SecretConflict(RuntimeError):
    """A Secret of the name the controller would write exists and is not ours."""


def secret_name(vcluster_name: str) -> str:
    return f"{vcluster_name}-kubeconfig"


class ManagementCluster:
    def __init__(self, host):
        """`host`: the registered HostCluster, with its kubeconfig or in-cluster."""
        self.kube = HostKube.of(host)
        self.custom = CustomObjectsApi(self.kube.api)

    def identity(self) -> str:
        """The uid of kube-system: the same for as long as the cluster's data lives."""
        return self.kube.core.read_namespace("kube-system", _request_timeout=REQUEST_TIMEOUT).metadata.uid

    def ensure_crd(self) -> None:
        """Install or update the CRD, and wait until the API serves it."""
        if not self.kube.apply(crd.manifest()):
            return
        deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
        while time.monotonic() < deadline:
            found = ApiextensionsV1Api(self.kube.api).read_custom_resource_definition(crd.NAME)
            if any(c.type == "Established" and c.status == "True" for c in found.status.conditions or []):
                return
            time.sleep(0.2)
        raise TimeoutError(f"CRD {crd.NAME} not established after {CRD_ESTABLISH_TIMEOUT}s")

    def virtual_clusters(self) -> list[dict]:
        listed = self.custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, crd.PLURAL,
                                                        _request_timeout=REQUEST_TIMEOUT)
        return listed["items"]

    def namespace_teams(self) -> dict[str, str]:
        """{namespace: team slug} for every namespace a platform admin mapped to a team."""
        namespaces = self.kube.core.list_namespace(label_selector=crd.TEAM_LABEL, _request_timeout=REQUEST_TIMEOUT)
        return {ns.metadata.name: ns.metadata.labels[crd.TEAM_LABEL] for ns in namespaces.items}

    def write_status(self, obj: dict, status: dict) -> None:
        """Replace the object's status with `status` (keys it no longer has are removed)."""
        removed = {key: None for key in obj.get("status") or {} if key not in status}
        meta = obj["metadata"]
        self.custom.patch_namespaced_custom_object_status(
            crd.GROUP, crd.VERSION, meta["namespace"], crd.PLURAL, meta["name"], {"status": {**status, **removed}},
            _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT,
        )

    def set_finalizer(self, obj: dict, present: bool) -> None:
        meta = obj["metadata"]
        finalizers = [f for f in meta.get("finalizers") or [] if f != crd.FINALIZER]
        if present:
            finalizers.append(crd.FINALIZER)
        if finalizers == (meta.get("finalizers") or []):
            return
        # resourceVersion makes it a compare-and-set: another writer's finalizers are never lost.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        self.custom.patch_namespaced_custom_object(
            crd.GROUP, crd.VERSION, meta["namespace"], crd.PLURAL, meta["name"], patch,
            _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT,
        )

    def write_kubeconfig(self, obj: dict, kubeconfig: str) -> str:
        """Write the vcluster's kubeconfig into a Secret owned by the object (so it goes
        with it); returns the Secret's name."""
        meta = obj["metadata"]
        name = secret_name(meta["name"])
        data = {SECRET_KEY: base64.b64encode(kubeconfig.encode()).decode()}
        existing = self._ours(obj, name)
        if existing is not None and existing.data == data:
            return name  # the usual pass: one read, no write
        self.kube.apply({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {"app.kubernetes.io/managed-by": "vcportal"},
                "ownerReferences": [{"apiVersion": crd.API_VERSION, "kind": crd.KIND, "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "type": "Opaque",
            "data": data,
        })
        return name

    def delete_kubeconfig(self, obj: dict) -> None:
        name = secret_name(obj["metadata"]["name"])
        try:
            if self._ours(obj, name) is None:
                return
        except SecretConflict:
            return
        self.kube.delete("v1", "Secret", name, obj["metadata"]["namespace"])

    def _ours(self, obj: dict, name: str):
        """The Secret `name` next to obj if obj owns it, None if there is none; raises
        SecretConflict if someone else's Secret has that name."""
        meta = obj["metadata"]
        secret = read_or_none(self.kube.core.read_namespaced_secret, name, meta["namespace"])
        if secret is None:
            return None
        if not any(ref.uid == meta["uid"] for ref in secret.metadata.owner_references or []):
            raise SecretConflict(f"Secret {name} exists in {meta['namespace']} and does not belong to this "
                                 "VirtualCluster; the kubeconfig is not written over it.")
        return secret
