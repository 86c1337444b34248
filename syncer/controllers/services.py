"""Services: a host copy per virtual Service, and one ClusterIP for both.

Both API servers allocate from 10.96.0.0/16, so the host copy first asks for the IP the
vcluster already gave the Service. Usually the host has it free and nothing else
happens. If the host has given it away, the host allocates another, and the virtual
Service is recreated with the host's IP (a ClusterIP cannot be changed in place): the
tenant sees a new uid and the IP that really routes. If that IP is taken inside the
vcluster too, a Warning Event says so and the syncer tries again later.
"""

from __future__ import annotations

import logging

from .. import names, translate
from ..kube import SERVICES, ApiError
from .base import Context, Controller

logger = logging.getLogger(__name__)

KIND = "Service"
NOT_SYNCED = {"default/kubernetes"}  # the vcluster's own API server
RETRY_CONFLICT = 30


class ServiceController(Controller):
    name = "services"

    def __init__(self, ctx: Context, workers: int = 2):
        super().__init__(ctx, workers)
        self.virtual = ctx.vinf[SERVICES]
        self.hosts = ctx.hinf[SERVICES]

    def keys(self):
        prefix = KIND + "/"
        return {*self.virtual.keys(),
                *(v[len(prefix):] for v in self.hosts.index_values("virtual") if v.startswith(prefix))} - NOT_SYNCED

    def reconcile(self, key: str) -> float | None:
        if key in NOT_SYNCED:
            return None
        service = self.virtual.get(key)
        copies = self.host_copies(SERVICES, KIND, key)
        if service is None:
            if copies and self.virtual_gone(SERVICES, key):
                self.delete_all(SERVICES, copies)
            return None
        desired = translate.host_service(service, self.ctx.target)
        current = self.pick(SERVICES, copies, desired["metadata"]["name"])
        if current is not None and not self._update(desired, current):
            self.delete_host(SERVICES, current, grace_seconds=0)
            current = None
        if current is None:
            current = self._create(service, desired)
            if current is None:
                return None
        if _has_cluster_ip(service) and _ips(current) != _ips(service):
            return self._take_host_ip(service, current)
        self._report(service, current)
        return None

    def _create(self, service: dict, desired: dict) -> dict | None:
        if _has_cluster_ip(service):
            wish = {**desired, "spec": {**desired["spec"], "clusterIPs": _ips(service),
                                        "clusterIP": service["spec"]["clusterIP"]}}
            try:
                return self.ctx.host.create(SERVICES, self.ctx.target.namespace, wish)
            except ApiError as exc:
                # 422: the IP is taken on the host (or outside its range). Whatever else stands
                # in the way (refused, name taken) shows again, and is handled, just below.
                if exc.status not in (403, 409, 422):
                    raise
                logger.info("host did not create %s with the vcluster's IP: %s", key_of(service), exc.message)
        return self.create_host(SERVICES, desired, service, KIND)

    def _update(self, desired: dict, current: dict) -> bool:
        """Patch the host copy; False if the change needs a new copy (a field the host
        will not change in place, such as turning headless)."""
        if _headless(desired) != _headless(current):
            return False
        patch = {}
        spec = translate.service_spec_patch(desired, current)
        if spec:
            patch["spec"] = spec
        if translate.marks_differ(desired, current):
            patch["metadata"] = translate.metadata_patch(desired, current)
        if patch:
            try:
                self.ctx.host.patch(SERVICES, self.ctx.target.namespace, current["metadata"]["name"], patch)
            except ApiError as exc:
                if exc.status != 422:
                    raise
                return False
        return True

    def _take_host_ip(self, service: dict, current: dict) -> float | None:
        """Recreate the virtual Service with the host copy's ClusterIPs."""
        wanted = _ips(current)
        taken = [s for s in self.virtual.values()
                 if set(_ips(s)) & set(wanted) and s["metadata"]["uid"] != service["metadata"]["uid"]]
        if taken:
            other = taken[0]["metadata"]
            self.ctx.recorder.warn(service, KIND, "ClusterIPConflict",
                                   f"the host gave this service {', '.join(wanted)}, which "
                                   f"{other['namespace']}/{other['name']} holds in the vcluster")
            return RETRY_CONFLICT
        meta = service["metadata"]
        logger.info("recreating virtual service %s/%s with the host's IP %s", meta["namespace"], meta["name"], wanted)
        self.ctx.virtual.delete(SERVICES, meta["namespace"], meta["name"], uid=meta["uid"])
        try:
            recreated = self.ctx.virtual.create(SERVICES, meta["namespace"], translate.recreated_service(service, wanted))
        except ApiError:
            # Never leave the tenant without their Service: put it back as it was.
            self.ctx.virtual.create(SERVICES, meta["namespace"], translate.recreated_service(service, _ips(service)))
            raise
        self.ctx.host.patch(SERVICES, self.ctx.target.namespace, current["metadata"]["name"],
                            {"metadata": {"annotations": {names.ANN_UID: recreated["metadata"]["uid"]}}})
        return None

    def _report(self, service: dict, current: dict) -> None:
        want = (current.get("status") or {}).get("loadBalancer") or {}
        have = (service.get("status") or {}).get("loadBalancer") or {}
        if want != have:
            meta = service["metadata"]
            self.ctx.virtual.patch(SERVICES, meta["namespace"], meta["name"],
                                   {"status": {"loadBalancer": want}}, sub="status")


def _has_cluster_ip(service: dict) -> bool:
    spec = service["spec"]
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") not in (None, "", "None")


def _headless(service: dict) -> bool:
    return service["spec"].get("clusterIP") == "None"


def _ips(service: dict) -> list[str]:
    spec = service["spec"]
    return list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))


def key_of(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
