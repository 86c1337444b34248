"""Nodes, host → vcluster: one virtual Node per host node that runs a pod of this
vcluster, gone when unused.

A virtual Node carries the host node's labels and status, without what identifies the
host machine (machine ID, system UUID, boot ID, addresses) or only concerns the host
(taints, pod CIDR, provider ID, images). Its one address and kubelet port are the
syncer's kubelet endpoint (syncer.kubelet): the vcluster's API server sends logs, exec,
attach and port-forward there, and never learns where the host node is. Without an
endpoint in the config the Node has no address, and those requests fail.

Nothing in the vcluster heartbeats for a virtual Node, so the syncer renews its Lease
in kube-node-lease, as a kubelet would: otherwise the vcluster's node lifecycle
controller would mark it unreachable and evict its pods.
"""

from __future__ import annotations

import copy
import logging
import time
from datetime import datetime, timezone

from .. import names
from ..controller import Controller
from ..kind import ALL, HOST, OURS, READ, VIRTUAL, Index, Kind, Watch, changed_key
from ..kube import LEASES, NODES, PODS, ApiError
from ..names import LABEL_MANAGED_BY
from ..translate import labels_differ

logger = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
RENEW_EVERY = 10
# A node left without pods waits this long before it goes, so that a pod being
# replaced does not make it flap.
UNUSED_GRACE = 5
NODE_INDEX = "node"  # on the virtual pod informer: the node a pod is bound to
NODE_STATUS_FIELDS = ("capacity", "allocatable", "conditions", "nodeInfo")
ENDPOINT_FIELDS = ("addresses", "daemonEndpoints")
HOST_IDENTIFIERS = ("machineID", "systemUUID", "bootID")


def virtual_node(host_node: dict, vcluster: str, kubelet_endpoint: tuple[str, int] | None = None) -> dict:
    """A host node as the tenant sees it: labels and status; no taints, no pod CIDR, no
    machine identifiers, and the syncer's `kubelet_endpoint` (ip, port) for its address.
    The host's heartbeat times are left out: they change all the time and mean nothing
    in the vcluster, where the syncer's Lease says the node is alive."""
    meta = host_node["metadata"]
    status = {k: copy.deepcopy(v) for k, v in (host_node.get("status") or {}).items() if k in NODE_STATUS_FIELDS}
    for condition in status.get("conditions") or []:
        condition["lastHeartbeatTime"] = None  # as the API serves an unset time
    for identifier in HOST_IDENTIFIERS:
        (status.get("nodeInfo") or {})[identifier] = ""  # required fields: empty, not absent
    status.update(_endpoint_status(kubelet_endpoint))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": meta["name"],
            "labels": {**names.without_reserved(meta.get("labels")), LABEL_MANAGED_BY: vcluster},
        },
        "spec": {},
        "status": status,
    }


def _endpoint_status(kubelet_endpoint: tuple[str, int] | None) -> dict:
    if kubelet_endpoint is None:
        return {"addresses": [], "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}
    ip, port = kubelet_endpoint
    return {"addresses": [{"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}


def node_status_differs(desired: dict, actual: dict) -> bool:
    have = actual.get("status") or {}
    # The API leaves an empty address list out of what it serves.
    return any((desired["status"].get(k) or None) != (have.get(k) or None)
               for k in NODE_STATUS_FIELDS + ENDPOINT_FIELDS)


class NodeSync(Controller):
    def __init__(self, ctx, kind, workers: int = 2):
        super().__init__(ctx, kind, workers)
        self.virtual = ctx.vinf[NODES]
        self.hosts = ctx.hinf[NODES]
        self.pods = ctx.vinf[PODS]
        # Only one worker handles a given node at a time (the queue sees to it).
        self._unused_since: dict[str, float] = {}
        self._renewed: dict[str, float] = {}

    def keys(self):
        return {*self.virtual.keys(), *self.pods.index_values(NODE_INDEX)}

    def ensure(self, name: str) -> None:
        """Make sure the virtual Node exists before a pod is bound to it."""
        if self.virtual.get(name) is None:
            self._create(name)
        self.enqueue(name)

    def reconcile(self, name: str) -> float | None:
        vnode = self.virtual.get(name)
        hnode = self.hosts.get(name)
        if hnode is None or not self.pods.by_index(NODE_INDEX, name):
            return self._retire(name, vnode)
        self._unused_since.pop(name, None)
        if vnode is None:
            vnode = self._create(name)
        else:
            self._update(hnode, vnode)
        if vnode is not None:
            self._renew_lease(vnode)
        return RENEW_EVERY

    def _create(self, name: str) -> dict | None:
        hnode = self.hosts.get(name)
        if hnode is None:
            return None
        try:
            return self.ctx.virtual.create(NODES, None, self._desired(hnode))
        except ApiError as exc:
            if not exc.conflict:
                raise
            return self.ctx.virtual.get(NODES, None, name)

    def _update(self, hnode: dict, vnode: dict) -> None:
        desired = self._desired(hnode)
        if labels_differ(desired, vnode):
            self.ctx.virtual.patch(NODES, None, vnode["metadata"]["name"],
                                   {"metadata": {"labels": desired["metadata"]["labels"]}})
        if node_status_differs(desired, vnode):
            self.ctx.virtual.patch(NODES, None, vnode["metadata"]["name"], {"status": desired["status"]}, sub="status")

    def _desired(self, hnode: dict) -> dict:
        return virtual_node(hnode, self.ctx.vcluster, self.ctx.target.kubelet_endpoint)

    def _retire(self, name: str, vnode: dict | None) -> float | None:
        if vnode is None:
            return None
        since = self._unused_since.setdefault(name, time.monotonic())
        left = since + UNUSED_GRACE - time.monotonic()
        if left > 0:
            return left
        logger.info("virtual node %s runs no pods any more; deleting it", name)
        self.ctx.virtual.delete(NODES, None, name, uid=vnode["metadata"]["uid"])
        self._unused_since.pop(name, None)
        self._renewed.pop(name, None)
        return None

    def _renew_lease(self, vnode: dict) -> None:
        name = vnode["metadata"]["name"]
        if time.monotonic() - self._renewed.get(name, -RENEW_EVERY) < RENEW_EVERY / 2:
            return
        self._renewed[name] = time.monotonic()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            self.ctx.virtual.patch(LEASES, LEASE_NAMESPACE, name, {"spec": {"renewTime": now}})
        except ApiError as exc:
            if not exc.not_found:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": vnode["metadata"]["uid"]}
            self.ctx.virtual.create(LEASES, LEASE_NAMESPACE, {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
            })


def _node_of(pod: dict | None) -> str | None:
    return (pod or {}).get("spec", {}).get("nodeName") or None


def _nodes_of_pod(ctx, old: dict | None, new: dict | None) -> set[str]:
    return {_node_of(old), _node_of(new)} - {None}


KIND = Kind(
    name="Node",
    resource=NODES,
    controller=NodeSync,
    to_host=False,
    virtual_objects=OURS,
    host_objects=ALL,
    host_verbs=READ,
    watches=(Watch(VIRTUAL, NODES, changed_key), Watch(HOST, NODES, changed_key), Watch(VIRTUAL, PODS, _nodes_of_pod)),
    indexes=(Index(VIRTUAL, PODS, NODE_INDEX, lambda pod: [n] if (n := _node_of(pod)) else []),),
    workers=1,
)
