"""Service-account tokens: issued by the vcluster for the pod, kept fresh in the host Secret.

Real tokens last a year here (the API server extends the kubelet's 3607 s), too long to
watch a refresh happen, so the refresh rule is tested with a scripted vcluster.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

from syncer import kinds, names
from syncer.controller import SyncContext
from syncer.kinds.pods.controller import ANN_NODE, ANN_REFRESH, PodController
from syncer.kube import PODS, SECRETS
from syncer.translate import Target

from .test_translate import virtual_pod


class Store(dict):
    def keys(self):
        return list(super().keys())


class Calls:
    """Records writes; answers TokenRequests with tokens that expire in `lifetime` s."""

    def __init__(self, lifetime: float):
        self.lifetime, self.writes, self.issued = lifetime, [], 0

    def create(self, resource, namespace, obj, *, name=None, sub=None):
        if sub == "token":
            self.issued += 1
            expires = datetime.fromtimestamp(time.time() + self.lifetime, timezone.utc)
            return {"status": {"token": f"token-{self.issued}",
                               "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}
        self.writes.append(("create", resource.plural, obj))
        return obj

    def patch(self, resource, namespace, name, patch, **kwargs):
        self.writes.append(("patch", resource.plural, patch))
        return patch


def controller(lifetime: float) -> tuple[PodController, Calls, Store]:
    calls, secrets = Calls(lifetime), Store()
    ctx = SyncContext(Target("vc", "host-ns"), calls, calls, {PODS: Store()},
                      {PODS: Store(), SECRETS: secrets}, recorder=None)
    return PodController(ctx, kinds.pods.KIND), calls, secrets


HOST_POD = {"metadata": {"name": "web-1-x-shop-x-vc", "uid": "host-uid"}, "spec": {"nodeName": "node-1"}}


def test_tokens_are_issued_before_the_pod_is_scheduled_and_again_once_it_is_bound_to_a_node():
    """The kubelet finds the Secret at once; the tokens it keeps name the node, as a kubelet's."""
    pods, calls, _ = controller(lifetime=3600)
    unscheduled = {**HOST_POD, "spec": {}}
    pods._ensure_tokens(virtual_pod(), unscheduled)
    pods._ensure_tokens(virtual_pod(), unscheduled)
    assert calls.issued == 1 and calls.writes[0][2]["metadata"]["annotations"][ANN_NODE] == ""

    pods._ensure_tokens(virtual_pod(), HOST_POD)
    pods._ensure_tokens(virtual_pod(), HOST_POD)
    assert calls.issued == 2
    assert calls.writes[-1][2]["metadata"]["annotations"][ANN_NODE] == "node-1"


def test_tokens_go_into_a_secret_owned_by_the_host_pod_and_are_not_issued_twice():
    pods, calls, _ = controller(lifetime=3600)
    again = pods._ensure_tokens(virtual_pod(), HOST_POD)
    assert 0.7 * 3600 < again <= 0.8 * 3600

    [(verb, kind, secret)] = calls.writes
    assert (verb, kind) == ("create", "secrets")
    assert secret["metadata"]["name"] == names.token_secret_name(HOST_POD["metadata"]["name"])
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "web-1-x-shop-x-vc", "uid": "host-uid"}]
    assert base64.b64decode(secret["data"]["token-0"]) == b"token-1"
    assert not [v for v in secret["metadata"]["annotations"].values() if "token-1" in v]

    pods._ensure_tokens(virtual_pod(), HOST_POD)  # the informer has not shown the Secret yet
    assert calls.issued == 1


def test_tokens_are_renewed_at_80_percent_of_their_lifetime():
    pods, calls, secrets = controller(lifetime=3600)
    pods._ensure_tokens(virtual_pod(), HOST_POD)
    written = calls.writes[0][2]
    written["metadata"]["annotations"][ANN_REFRESH] = f"{time.time() - 1:.0f}"  # that moment has come
    secrets[f"host-ns/{written['metadata']['name']}"] = written
    pods._issued.clear()

    pods._ensure_tokens(virtual_pod(), HOST_POD)

    assert calls.issued == 2
    verb, _, patch = calls.writes[-1]
    assert verb == "patch" and base64.b64decode(patch["data"]["token-0"]) == b"token-2"


def test_a_new_pod_of_the_same_name_gets_its_own_tokens():
    pods, calls, _ = controller(lifetime=3600)
    pods._ensure_tokens(virtual_pod(), HOST_POD)
    replacement = virtual_pod()
    replacement["metadata"]["uid"] = "uid-2"
    pods._ensure_tokens(replacement, HOST_POD)
    assert calls.issued == 2
