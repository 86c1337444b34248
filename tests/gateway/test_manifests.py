import json

from gateway.kubestatus import Refusal
from provisioning.rbac import access_bindings


def test_the_role_groups_are_bound_and_nothing_else():
    bindings = {b["metadata"]["name"]: b for b in access_bindings()}
    assert {name: b["roleRef"]["name"] for name, b in bindings.items()} == {
        "vcportal:role:admin": "cluster-admin",
        "vcportal:role:member": "cluster-admin",
        "vcportal:role:viewer": "view",
        "vcportal:role:platform-admin": "cluster-admin",
    }
    for name, binding in bindings.items():
        assert binding["kind"] == "ClusterRoleBinding"
        assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}]


def test_refusals_are_kubernetes_status_objects():
    body = json.loads(Refusal(403, "not a member").body())
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "not a member", "reason": "Forbidden", "code": 403}
