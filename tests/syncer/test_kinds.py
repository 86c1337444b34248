"""The registry of kinds: what the runner and the host RBAC are built from."""

from __future__ import annotations

from provisioning import manifests
from syncer import names, rbac
from syncer.controller import HostSync, SyncContext
from syncer.kinds import REGISTRY, services
from syncer.kinds.ingresses import CLAIMS_NAMESPACE
from syncer.translate import Target


def test_productions_syncer_role_and_cluster_role_are_the_registrys_rules():
    objects = {m["kind"]: m for m in manifests.syncer_identity("vc-alpha-dev", {"a": "b"})}
    assert objects["Role"]["rules"] == rbac.host_rules()["role"]
    assert objects["ClusterRole"]["rules"] == rbac.host_rules()["node_reader"]
    assert objects["RoleBinding"]["roleRef"]["name"] == objects["Role"]["metadata"]["name"]
    assert objects["ClusterRoleBinding"]["roleRef"]["name"] == objects["ClusterRole"]["metadata"]["name"]


def test_the_syncer_claims_host_names_only_in_the_claims_namespace():
    role, binding = manifests.host_name_claims("vc-alpha-dev", {"a": "b"})
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == CLAIMS_NAMESPACE
    assert role["rules"] == rbac.host_rules()["host_names"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "create", "delete"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": manifests.SYNCER, "namespace": "vc-alpha-dev"}]


def test_the_host_role_grants_each_kind_exactly_its_declared_verbs():
    granted = {(resource, verb) for rule in rbac.host_rules()["role"] + rbac.host_rules()["node_reader"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    declared = {(kind.resource.plural, verb) for kind in REGISTRY if kind.host_objects for verb in kind.host_verbs}
    declared |= {(f"{kind.resource.plural}/{sub}", verb) for kind in REGISTRY if kind.host_objects
                 for sub, verbs in kind.host_subresources for verb in verbs}
    assert granted == declared
    written = {kind.resource.plural for kind in REGISTRY if kind.to_host}
    assert written == {"pods", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims",
                       "poddisruptionbudgets", "ingresses", "networkpolicies"}
    assert {r for r, v in granted if v == "create" and "/" not in r} == written, "only what it copies is written"
    streams = {(r, v) for r, v in granted if "/" in r}
    assert streams == {("pods/log", "get"), ("pods/exec", "create"), ("pods/exec", "get"),
                       ("pods/attach", "create"), ("pods/attach", "get"),
                       ("pods/portforward", "create"), ("pods/portforward", "get"),
                       ("pods/ephemeralcontainers", "patch"), ("pods/resize", "patch")}, \
        "the kubelet API's, the egress proxy's, kubectl debug's and in-place resize's subresources, nothing else"


def test_every_kind_has_its_own_name_and_resource():
    assert len({k.name for k in REGISTRY}) == len({k.resource for k in REGISTRY}) == len(REGISTRY)
    recorded = [name for kind in REGISTRY for name in (kind.name, *kind.also_records)]
    assert len(recorded) == len(set(recorded))


class Host:
    def __init__(self):
        self.deleted = []

    def delete(self, resource, namespace, name, **kwargs):
        self.deleted.append(name)
        return True


def copy_named(name: str, created: str) -> dict:
    return {"metadata": {"name": name, "namespace": "host-ns", "creationTimestamp": created, "uid": name,
                         "labels": {names.LABEL_MANAGED_BY: "vc"},
                         "annotations": {names.ANN_NAME: "web", names.ANN_NAMESPACE: "shop"}}}


def test_a_copy_is_found_by_its_marks_whatever_its_name_and_duplicates_go():
    host = Host()
    controller = HostSync(SyncContext(Target("vc", "host-ns"), None, host, {}, {}, None), services.KIND)
    old_scheme = copy_named("web-x-shop-x-vc-0123456789", "2026-01-01T00:00:00Z")
    later = copy_named("web-x-shop-x-vc-dup", "2026-02-01T00:00:00Z")
    assert controller.pick([later, old_scheme], "web-x-shop-x-vc-0123456789abcdef") is old_scheme
    assert host.deleted == ["web-x-shop-x-vc-dup"]

    exact = copy_named("web-x-shop-x-vc-0123456789abcdef", "2026-03-01T00:00:00Z")
    assert controller.pick([old_scheme, exact], "web-x-shop-x-vc-0123456789abcdef") is exact
    assert host.deleted[-1] == "web-x-shop-x-vc-0123456789"
