"""Endpoints of selector-less Services, which the tenant writes by hand, vcluster → host.

A Service with a selector needs no copying: its host copy selects the host pods and the
host's controllers fill its endpoints (and endpoint slices), while the vcluster's
controllers fill the virtual ones from the pod IPs the syncer reports back.

Hand-written endpoints could point a host Service at any address the host routes to:
another tenant's pod, a host component (the CVE-2021-25740 class). So only addresses
that are IPs of this vcluster's own host pods reach the host; the others are dropped
and a HostRefused event names them. A target reference survives only as the host name
of a pod of the same virtual namespace. A tenant may write EndpointSlices instead of (or
beside) Endpoints: those not made by the vcluster's controllers (`managed-by`) are read
as more subsets of the same host Endpoints, under the same rule, and the host's
mirroring controller turns them into slices there.

The vcluster's own `default/kubernetes` Endpoints and EndpointSlice are the syncer's to
write (`kubernetes_endpoints`): the API server's reconciler is off, as its address is
loopback or its pod's, so they name where the vcluster's pods reach it (`api_endpoint`).
"""

from __future__ import annotations

import copy

from ..controller import HostSync
from ..informer import key_of
from ..kind import HOST, VIRTUAL, Index, Kind, Watch, changed_key
from ..kube import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES, Resource
from ..translate import Target, host_object, marks_patch

NOT_SYNCED = {"default/kubernetes"}
ADDRESS_LISTS = ("addresses", "notReadyAddresses")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# Slices the vcluster's controllers derive (from pods, or mirrored from Endpoints): not the tenant's own.
SLICES_OF_SERVICE = "slices-of-service"  # index of the virtual EndpointSlices: the tenant's, by Service key
CONTROLLERS = {"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"}


def kubernetes_endpoints(address: tuple[str, int]) -> list[tuple[Resource, dict]]:
    """The `kubernetes` Service's Endpoints and EndpointSlice, as an API server's
    reconciler writes them, for the API server at `address`."""
    ip, port = address
    meta = {"name": "kubernetes", "namespace": "default"}
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 # The slice is written here, not mirrored from these by the controller manager.
                 "metadata": {**meta, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                 "subsets": [{"addresses": [{"ip": ip}], "ports": ports}]}
    endpoint_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {**meta, "labels": {"kubernetes.io/service-name": "kubernetes"}},
                      "addressType": "IPv6" if ":" in ip else "IPv4",
                      "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}], "ports": ports}
    return [(ENDPOINTS, endpoints), (ENDPOINTSLICES, endpoint_slice)]


def host_endpoints(endpoints: dict, target: Target, pod_ips: set[str]) -> tuple[dict, list[str]]:
    """The host copy, keeping only addresses in `pod_ips` (this vcluster's host pods);
    and the addresses dropped."""
    namespace = endpoints["metadata"]["namespace"]
    subsets, dropped = [], []
    for subset in copy.deepcopy(endpoints.get("subsets") or []):
        for kind in ADDRESS_LISTS:
            kept = []
            for address in subset.get(kind) or []:
                if address.get("ip") not in pod_ips:
                    dropped.append(address.get("ip") or "?")
                    continue
                ref = address.pop("targetRef", None)
                if ref and ref.get("kind") == "Pod" and ref.get("namespace", namespace) == namespace:
                    address["targetRef"] = {"kind": "Pod", "namespace": target.namespace,
                                            "name": target.name(ref["name"], namespace)}
                kept.append(address)
            if kept:
                subset[kind] = kept
            else:
                subset.pop(kind, None)
        if any(subset.get(kind) for kind in ADDRESS_LISTS):
            subsets.append(subset)
    host = host_object("Endpoints", endpoints, target)
    host["subsets"] = subsets
    return host, dropped


def hand_written(endpoint_slice: dict) -> bool:
    labels = endpoint_slice["metadata"].get("labels") or {}
    return bool(labels.get(SERVICE_NAME_LABEL)) and labels.get(MANAGED_BY_LABEL) not in CONTROLLERS \
        and endpoint_slice.get("addressType") in ("IPv4", "IPv6")


def slice_subsets(endpoint_slice: dict) -> list[dict]:
    """A hand-written EndpointSlice as Endpoints subsets: its addresses by readiness
    (ready unless it says not), each with the slice's ports."""
    ports = [{k: p[k] for k in ("name", "port", "protocol", "appProtocol") if p.get(k) is not None}
             for p in endpoint_slice.get("ports") or []]
    lists: dict[str, list[dict]] = {}
    for endpoint in endpoint_slice.get("endpoints") or []:
        ready = (endpoint.get("conditions") or {}).get("ready") is not False
        for ip in endpoint.get("addresses") or []:
            address = {"ip": ip, **({"targetRef": endpoint["targetRef"]} if endpoint.get("targetRef") else {})}
            lists.setdefault("addresses" if ready else "notReadyAddresses", []).append(address)
    return [{**lists, "ports": ports}] if lists and ports else []


def pod_ips(pod: dict) -> set[str]:
    status = pod.get("status") or {}
    return {ip["ip"] for ip in status.get("podIPs") or [] if ip.get("ip")} | \
        ({status["podIP"]} if status.get("podIP") else set())


class EndpointsSync(HostSync):
    def keys(self):
        return {*super().keys(), *self.ctx.vinf[ENDPOINTSLICES].index_values(SLICES_OF_SERVICE)}

    def wanted(self, key: str) -> dict | None:
        """The tenant's Endpoints with the subsets of their own EndpointSlices added."""
        endpoints, service = self.ctx.vinf[ENDPOINTS].get(key), self.ctx.vinf[SERVICES].get(key)
        slices = self.ctx.vinf[ENDPOINTSLICES].by_index(SLICES_OF_SERVICE, key)
        if (endpoints is None and not slices) or service is None or key in NOT_SYNCED \
                or service["spec"].get("selector"):
            return None
        if not slices:
            return endpoints
        meta = service["metadata"] if endpoints is None else endpoints["metadata"]
        subsets = (endpoints or {}).get("subsets") or []
        return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
                "subsets": subsets + [s for eps in sorted(slices, key=key_of) for s in slice_subsets(eps)]}

    def may_delete(self, key: str) -> bool:
        return self.ctx.vinf[SERVICES].get(key) is not None or self.virtual_gone(key)

    def to_host(self, virtual: dict) -> dict:
        own = set().union(*(pod_ips(p) for p in self.ctx.hinf[PODS].values()))
        host, dropped = host_endpoints(virtual, self.ctx.target, own)
        if dropped:
            self.refuse(virtual, f"addresses {', '.join(sorted(set(dropped)))} are not pods of this vcluster")
        return host

    def patch(self, desired: dict, current: dict) -> dict | None:
        if (current.get("subsets") or []) == desired["subsets"] and not marks_patch(desired, current):
            return None
        return {**marks_patch(desired, current), "subsets": desired["subsets"]}


def _service_of_slice(endpoint_slice: dict) -> list[str]:
    if not hand_written(endpoint_slice):
        return []
    meta = endpoint_slice["metadata"]
    return [f"{meta['namespace']}/{meta['labels'][SERVICE_NAME_LABEL]}"]


def _when_a_slice_changes(ctx, old: dict | None, new: dict | None) -> list[str]:
    return [key for endpoint_slice in (old, new) if endpoint_slice for key in _service_of_slice(endpoint_slice)]


def _when_pod_ips_change(ctx, old: dict | None, new: dict | None) -> list[str]:
    """A host pod's IP came or went: hand-written endpoints may now be allowed, or not."""
    if pod_ips(old or {}) == pod_ips(new or {}):
        return []
    return ctx.vinf[ENDPOINTS].keys()


KIND = Kind(
    name="Endpoints",
    resource=ENDPOINTS,
    controller=EndpointsSync,
    # A Service's selector may come or go: its endpoints are then ours to copy, or not.
    watches=(Watch(VIRTUAL, SERVICES, changed_key), Watch(VIRTUAL, ENDPOINTSLICES, _when_a_slice_changes),
             Watch(HOST, PODS, _when_pod_ips_change)),
    indexes=(Index(VIRTUAL, ENDPOINTSLICES, SLICES_OF_SERVICE, _service_of_slice),),
)
