"""Services, vcluster → host: a host copy per virtual Service, and the host's ClusterIP for both.

The host always allocates the ClusterIP (a tenant must not pick an address on the
host). A Service takes it as it is created: the syncer's admission webhook
(syncer.admission) creates the host copy first and gives the new Service the copy's
ClusterIPs (`admit`), so clients never see another address. The copy carries no uid
until the controller claims it, and is not taken for an orphan meanwhile
(ADMITTED_GRACE). Where the webhook did not act (a generated name, the host refusing
the copy at that moment, a vcluster whose API server predates the webhook), the
virtual Service is recreated with the host's IP (a ClusterIP cannot be changed in
place), as the reference implementation does: the tenant sees a new uid and the IP
that really routes. If that IP is taken inside the vcluster, a Warning event says so
and the syncer tries again later. Deleting a Service makes the vcluster's
endpoints controller delete its Endpoints, which for a selector-less Service the tenant
wrote by hand: the syncer puts them back. ExternalName Services are refused unless the
host cluster's policy allows them; externalIPs are dropped (they would let a tenant
claim addresses on the host's nodes); node ports are the host's to allocate.
"""

from __future__ import annotations

import copy
import logging
import time

from .. import metricsapi, names
from ..controller import HostSync
from ..informer import key_of
from ..kind import Kind
from ..kube import ENDPOINTS, SERVICES, ApiError
from ..names import LABEL_MANAGED_BY, LABEL_NAMESPACE
from ..translate import Refused, Target, age, host_object, marks_patch

logger = logging.getLogger(__name__)

# The vcluster's own API server, and where its metrics API is (syncer.metricsapi).
NOT_SYNCED = {"default/kubernetes", f"{metricsapi.SERVICE_NAMESPACE}/{metricsapi.SERVICE_NAME}"}
RETRY_CONFLICT = 30
# How long a host copy the webhook made may wait for its Service to appear in the
# vcluster (the create it admitted may still fail) before it is deleted as an orphan.
ADMITTED_GRACE = 10
# How long after recreating a selector-less Service its hand-written Endpoints are put
# back if the vcluster's endpoints controller deletes them (it does so once, soon).
RESTORE_ENDPOINTS_FOR = 30
SERVICE_FIELDS = (
    "type", "ports", "selector", "sessionAffinity", "sessionAffinityConfig", "publishNotReadyAddresses",
    "externalName", "externalTrafficPolicy", "internalTrafficPolicy", "ipFamilyPolicy", "ipFamilies",
    "loadBalancerSourceRanges", "allocateLoadBalancerNodePorts", "loadBalancerClass", "trafficDistribution",
)


def host_service(service: dict, target: Target) -> dict:
    """The host copy, without a ClusterIP (the host allocates it), unless headless."""
    meta, spec = service["metadata"], service["spec"]
    if spec.get("type") == "ExternalName" and not target.policy.external_name_services:
        raise Refused("ExternalName Services are not allowed on this host cluster")
    host_spec = {k: copy.deepcopy(v) for k, v in spec.items() if k in SERVICE_FIELDS}
    for port in host_spec.get("ports") or []:
        port.pop("nodePort", None)
    if host_spec.get("selector"):
        host_spec["selector"] = {**host_spec["selector"], LABEL_MANAGED_BY: target.vcluster,
                                 LABEL_NAMESPACE: meta["namespace"]}
    if spec.get("clusterIP") == "None":
        host_spec["clusterIP"] = "None"
    return host_object("Service", service, target, spec=host_spec)


def admit(ctx, service: dict, from_external_name: bool = False) -> dict | None:
    """The host copy whose ClusterIPs a Service about to be created in the vcluster takes
    (created now if need be), or None to leave the Service as it is. from_external_name:
    an update turns an ExternalName Service, which has no ClusterIP, into this one. If the
    host's policy allowed the ExternalName Service, its host copy exists and is not
    taken here: the controller changes its type, and recreates the Service with its IP."""
    meta, spec = service["metadata"], service["spec"]
    key = key_of(service)
    if (not meta.get("name") or spec.get("type") == "ExternalName" or _headless(service) or key in NOT_SYNCED
            or (not from_external_name and ctx.vinf[SERVICES].get(key) is not None)):  # a create fails: the name is taken
        return None
    if from_external_name:  # unclaimed, as a create's copy, until the controller sees the Service turned
        service = {**service, "metadata": {k: v for k, v in meta.items() if k != "uid"}}
    try:
        host_copy = _unclaimed_copy(ctx, host_service(service, ctx.target))
    except Refused:
        return None
    if host_copy is None or not cluster_ips(host_copy) or _holder(ctx, cluster_ips(host_copy)) is not None:
        return None
    logger.info("admitting virtual service %s with the host's IP %s", key, cluster_ips(host_copy))
    return host_copy


def _unclaimed_copy(ctx, desired: dict) -> dict | None:
    """`desired` created on the host, or the copy an earlier admission of the same
    Service created (its create failed, or it is being retried); None if the host refuses
    it or holds a copy of a Service the vcluster had (the controller sorts that out)."""
    meta = desired["metadata"]
    try:
        return ctx.host.create(SERVICES, meta["namespace"], desired)
    except ApiError as exc:
        if exc.status != 409:
            logger.info("the host refused service %s at admission: %s", meta["name"], exc)
            return None
    existing = ctx.host.get_or_none(SERVICES, meta["namespace"], meta["name"])
    if existing is None or not names.is_ours(existing, ctx.vcluster) or _claimed(existing) \
            or names.recorded_key(existing) != names.recorded_key(desired):
        return None
    return existing


def service_spec_patch(desired: dict, actual: dict) -> dict | None:
    """What differs in the copied fields (node ports the host allocated are kept)."""
    patch = {}
    for key in SERVICE_FIELDS:
        want, have = desired["spec"].get(key), actual["spec"].get(key)
        if key == "ports" and have:
            have = [{k: v for k, v in p.items() if k != "nodePort"} for p in have]
        if want != have:
            patch[key] = desired["spec"].get(key)
    return patch or None


def recreated_service(service: dict, cluster_ips: list[str]) -> dict:
    """The virtual service as the tenant wrote it, with the host's ClusterIPs."""
    meta = {k: v for k, v in service["metadata"].items()
            if k in ("name", "namespace", "labels", "annotations", "ownerReferences", "finalizers")}
    spec = copy.deepcopy(service["spec"])
    spec["clusterIP"], spec["clusterIPs"] = cluster_ips[0], list(cluster_ips)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def restored_endpoints(endpoints: dict) -> dict:
    """Hand-written Endpoints as the tenant wrote them, to create again."""
    meta = {k: v for k, v in endpoints["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": endpoints.get("subsets") or []}


class ServiceSync(HostSync):
    def __init__(self, ctx, kind, workers: int = 2):
        super().__init__(ctx, kind, workers)
        self._endpoints_to_restore: dict[str, tuple[dict, float]] = {}  # key → (Endpoints, until)

    def keys(self):
        return super().keys() - NOT_SYNCED

    def reconcile(self, key: str) -> float | None:
        cached = self.ctx.vinf[SERVICES].get(key)
        if (cached is None or cached["spec"].get("type") == "ExternalName") and (wait := self._admission_pending(key)):
            return wait
        return super().reconcile(key)

    def _admission_pending(self, key: str) -> float | None:
        """Seconds until the copies the webhook just made for `key` may be deleted: its
        Service may not be in the vcluster yet, or not yet turned from ExternalName."""
        waits = [ADMITTED_GRACE - age(c) for c in self.host_copies(key) if not _claimed(c)]
        return max(waits) if waits and max(waits) > 0 else None

    def wanted(self, key: str) -> dict | None:
        return None if key in NOT_SYNCED else super().wanted(key)

    def may_delete(self, key: str) -> bool:
        return self.virtual_gone(key)

    def to_host(self, virtual: dict) -> dict:
        return host_service(virtual, self.ctx.target)

    def update(self, desired: dict, current: dict) -> bool:
        """Patch the host copy; False if the change needs a new copy (a field the host
        will not change in place, such as turning headless)."""
        if _headless(desired) != _headless(current):
            return False
        try:
            return super().update(desired, current)
        except ApiError as exc:
            if exc.status != 422:
                raise
            return False

    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        spec = service_spec_patch(desired, current)
        if spec:
            patch["spec"] = spec
        return patch or None

    def after(self, service: dict, current: dict) -> float | None:
        if _has_cluster_ip(service) and cluster_ips(current) != cluster_ips(service):
            return self._take_host_ip(service, current)
        self._report(service, current)
        return self._restore_endpoints(service)

    def _take_host_ip(self, service: dict, current: dict) -> float | None:
        """Recreate the virtual Service with the host copy's ClusterIPs."""
        wanted = cluster_ips(current)
        holder = _holder(self.ctx, wanted, but=service["metadata"]["uid"])
        if holder is not None:
            other = holder["metadata"]
            self.ctx.recorder.warn(service, self.kind.name, "ClusterIPConflict",
                                   f"the host gave this service {', '.join(wanted)}, which "
                                   f"{other['namespace']}/{other['name']} holds in the vcluster")
            return RETRY_CONFLICT
        meta, key = service["metadata"], key_of(service)
        # From the server: the cache may not show Endpoints written just after the Service.
        written = None if service["spec"].get("selector") else \
            self.ctx.virtual.get_or_none(ENDPOINTS, meta["namespace"], meta["name"])
        logger.info("recreating virtual service %s with the host's IP %s", key, wanted)
        self.ctx.virtual.delete(SERVICES, meta["namespace"], meta["name"], uid=meta["uid"])
        try:
            recreated = self.ctx.virtual.create(SERVICES, meta["namespace"], recreated_service(service, wanted))
        except ApiError:
            # Never leave the tenant without their Service: put it back as it was.
            self.ctx.virtual.create(SERVICES, meta["namespace"], recreated_service(service, cluster_ips(service)))
            raise
        self.ctx.host.patch(SERVICES, self.ctx.target.namespace, current["metadata"]["name"],
                            {"metadata": {"annotations": {names.ANN_UID: recreated["metadata"]["uid"]}}})
        if written is not None:
            self._endpoints_to_restore[key] = (written, time.monotonic() + RESTORE_ENDPOINTS_FOR)
            return 1
        return None

    def _restore_endpoints(self, service: dict) -> float | None:
        key = key_of(service)
        written, until = self._endpoints_to_restore.get(key, (None, 0))
        if written is None or time.monotonic() > until:
            self._endpoints_to_restore.pop(key, None)
            return None
        meta = written["metadata"]
        if self.ctx.virtual.get_or_none(ENDPOINTS, meta["namespace"], meta["name"]) is None:
            logger.info("putting back the hand-written endpoints of %s", key)
            self.ctx.virtual.create(ENDPOINTS, meta["namespace"], restored_endpoints(written))
        return 1

    def _report(self, service: dict, current: dict) -> None:
        want = (current.get("status") or {}).get("loadBalancer") or {}
        have = (service.get("status") or {}).get("loadBalancer") or {}
        if want != have:
            meta = service["metadata"]
            self.ctx.virtual.patch(SERVICES, meta["namespace"], meta["name"],
                                   {"status": {"loadBalancer": want}}, sub="status")


def _holder(ctx, ips: list[str], but: str | None = None) -> dict | None:
    """A virtual Service other than the one whose uid is `but` holding one of `ips`."""
    return next((s for s in ctx.vinf[SERVICES].values()
                 if set(cluster_ips(s)) & set(ips) and s["metadata"]["uid"] != but), None)


def _claimed(host_copy: dict) -> bool:
    """Whether the controller has recorded the uid of its virtual Service (the webhook
    creates copies before there is one)."""
    return bool((host_copy["metadata"].get("annotations") or {}).get(names.ANN_UID))


def _has_cluster_ip(service: dict) -> bool:
    spec = service["spec"]
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") not in (None, "", "None")


def _headless(service: dict) -> bool:
    return service["spec"].get("clusterIP") == "None"


def cluster_ips(service: dict) -> list[str]:
    """The Service's ClusterIPs, the first one first; [] before it has any."""
    spec = service["spec"]
    return list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))


KIND = Kind(name="Service", resource=SERVICES, controller=ServiceSync)
