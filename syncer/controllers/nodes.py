"""Virtual Nodes: one per host node that runs a pod of this vcluster, gone when unused.

A virtual Node carries the host node's labels and status. Nothing in the vcluster
heartbeats for it, so the syncer renews its Lease in kube-node-lease, as a kubelet
would: otherwise the vcluster's node lifecycle controller would mark it unreachable
and evict its pods.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from .. import translate
from ..kube import LEASES, NODES, PODS, ApiError
from .base import Context, Controller

logger = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
RENEW_EVERY = 10
# A node left without pods waits this long before it goes, so that a pod being
# replaced does not make it flap.
UNUSED_GRACE = 5


class NodeController(Controller):
    name = "nodes"

    def __init__(self, ctx: Context, workers: int = 1):
        super().__init__(ctx, workers)
        self.virtual = ctx.vinf[NODES]
        self.hosts = ctx.hinf[NODES]
        self.pods = ctx.vinf[PODS]
        # Only one worker handles a given node at a time (the queue sees to it).
        self._unused_since: dict[str, float] = {}
        self._renewed: dict[str, float] = {}

    def keys(self):
        return {*self.virtual.keys(), *self.pods.index_values("node")}

    def ensure(self, name: str) -> None:
        """Make sure the virtual Node exists before a pod is bound to it."""
        if self.virtual.get(name) is None:
            self._create(name)
        self.enqueue(name)

    def reconcile(self, name: str) -> float | None:
        vnode = self.virtual.get(name)
        hnode = self.hosts.get(name)
        if hnode is None or not self.pods.by_index("node", name):
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
            return self.ctx.virtual.create(NODES, None, translate.virtual_node(hnode, self.ctx.vcluster))
        except ApiError as exc:
            if not exc.conflict:
                raise
            return self.ctx.virtual.get(NODES, None, name)

    def _update(self, hnode: dict, vnode: dict) -> None:
        desired = translate.virtual_node(hnode, self.ctx.vcluster)
        if translate.labels_differ(desired, vnode):
            self.ctx.virtual.patch(NODES, None, vnode["metadata"]["name"],
                                   {"metadata": {"labels": desired["metadata"]["labels"]}})
        if translate.node_status_differs(desired, vnode):
            self.ctx.virtual.patch(NODES, None, vnode["metadata"]["name"], {"status": desired["status"]}, sub="status")

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
