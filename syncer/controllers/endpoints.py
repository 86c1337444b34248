"""Endpoints of selector-less Services, which the tenant writes by hand.

A Service with a selector needs no copying: its host copy selects the host pods and the
host's controllers fill its endpoints (and endpoint slices), while the vcluster's
controllers fill the virtual ones from the pod IPs the syncer reports back.
"""

from __future__ import annotations

from .. import translate
from ..kube import ENDPOINTS, SERVICES
from .base import Context, Controller

KIND = "Endpoints"
NOT_SYNCED = {"default/kubernetes"}


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(self, ctx: Context, workers: int = 2):
        super().__init__(ctx, workers)
        self.virtual = ctx.vinf[ENDPOINTS]
        self.services = ctx.vinf[SERVICES]
        self.hosts = ctx.hinf[ENDPOINTS]

    def keys(self):
        prefix = KIND + "/"
        return {*self.virtual.keys(),
                *(v[len(prefix):] for v in self.hosts.index_values("virtual") if v.startswith(prefix))}

    def wanted(self, key: str) -> dict | None:
        endpoints, service = self.virtual.get(key), self.services.get(key)
        if endpoints is None or service is None or key in NOT_SYNCED or service["spec"].get("selector"):
            return None
        return endpoints

    def reconcile(self, key: str) -> None:
        endpoints = self.wanted(key)
        copies = self.host_copies(ENDPOINTS, KIND, key)
        if endpoints is None:
            if copies and (self.services.get(key) is not None or self.virtual_gone(ENDPOINTS, key)):
                self.delete_all(ENDPOINTS, copies)
            return
        desired = translate.host_endpoints(endpoints, self.ctx.target)
        current = self.pick(ENDPOINTS, copies, desired["metadata"]["name"])
        if current is None:
            self.create_host(ENDPOINTS, desired, endpoints, KIND)
        elif (current.get("subsets") or []) != desired["subsets"] or translate.marks_differ(desired, current):
            patch = {"metadata": translate.metadata_patch(desired, current), "subsets": desired["subsets"]}
            self.ctx.host.patch(ENDPOINTS, self.ctx.target.namespace, current["metadata"]["name"], patch)
