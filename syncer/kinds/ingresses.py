"""Ingresses, vcluster → host, so the host's ingress controller serves them; their
addresses come back.

Every host name is a name on the host's controller, shared by all tenants, so a copy
carries only what is safe there:
- host names the host cluster's policy lets the team use (`ingress_hosts`, e.g.
  `*.team-a.apps.example.com`), each claimed for this vcluster on the whole host (below);
  a rule without a host, a default backend (both catch every name) and a wildcard host are
  refused;
- backends that are Services of the same virtual namespace, under their host names
  (never a `resource` backend: it would name a host object);
- TLS Secrets under their host names (syncer.kinds.secrets copies them);
- an IngressClass the host offers (syncer.kinds.ingressclasses), or none: the host's default;
- none of the tenant's annotations: controllers read configuration, even code, from them.

A host name is held by one vcluster at a time: a Lease named after it in the host
namespace CLAIMS_NAMESPACE, holder the vcluster's host namespace. Creating it is atomic,
so the first Ingress to name a host gets it, and another vcluster's is refused with a
Warning event until the name is free. A vcluster's claims go when none of its Ingresses
names the host any more, and with its teardown.
"""

from __future__ import annotations

import copy

from .. import names
from ..controller import HostSync
from ..kind import VIRTUAL, Index, Kind
from ..kube import INGRESSCLASSES, INGRESSES, LEASES, ApiError, Client
from ..translate import Refused, Target, host_object, marks_patch
from .ingressclasses import offered

CLAIMS_NAMESPACE = "vcportal-ingress-hosts"
LABEL_HOLDER = names.PREFIX + "claimed-by"  # the holder's host namespace
SPEC_FIELDS = ("ingressClassName", "rules", "tls")
TLS_INDEX = "tls-secrets"  # on the virtual Ingress informer: "<namespace>/<secret>"
# What the syncer may do with claims, in CLAIMS_NAMESPACE only (provisioning binds it there).
CLAIM_RULES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["get", "list", "create", "delete"]}]


def ingress_hosts(ingress: dict) -> set[str]:
    spec = ingress.get("spec") or {}
    hosts = {rule["host"] for rule in spec.get("rules") or [] if rule.get("host")}
    return hosts | {host for tls in spec.get("tls") or [] for host in tls.get("hosts") or []}


def tls_secrets(ingress: dict) -> list[str]:
    namespace = ingress["metadata"]["namespace"]
    return [f"{namespace}/{tls['secretName']}" for tls in (ingress.get("spec") or {}).get("tls") or []
            if tls.get("secretName")]


def host_ingress(ingress: dict, target: Target, classes: set[str]) -> dict:
    """The host copy of `ingress`, if every part of it is safe there; `classes` are the
    IngressClasses it may name."""
    spec, namespace = ingress.get("spec") or {}, ingress["metadata"]["namespace"]
    if spec.get("defaultBackend"):
        raise Refused("a default backend would catch every host name on the host's controller; "
                      "name a host in each rule instead")
    if not spec.get("rules"):
        raise Refused("an Ingress needs rules, each naming a host")
    host_spec = {"rules": [_rule(rule, namespace, target) for rule in spec["rules"]]}
    if spec.get("tls"):
        host_spec["tls"] = [_tls(tls, namespace, target) for tls in spec["tls"]]
    if (name := spec.get("ingressClassName")) is not None:
        if name not in classes:
            raise Refused(f"IngressClass {name} is not one the host cluster offers "
                          f"({', '.join(sorted(classes)) or 'none'}); an Ingress for a controller "
                          "inside the vcluster is left to it")
        host_spec["ingressClassName"] = name
    return host_object("Ingress", ingress, target, apiVersion="networking.k8s.io/v1", spec=host_spec)


def _rule(rule: dict, namespace: str, target: Target) -> dict:
    if not rule.get("host"):
        raise Refused("a rule without a host would catch every host name on the host's controller")
    _check_host(rule["host"], target)
    rule = copy.deepcopy(rule)
    for path in (rule.get("http") or {}).get("paths") or []:
        backend = path.get("backend") or {}
        if "service" not in backend:
            raise Refused("only Services can be backends (a resource backend would name a host object)")
        backend["service"]["name"] = target.name(backend["service"]["name"], namespace)
    return rule


def _tls(tls: dict, namespace: str, target: Target) -> dict:
    for host in tls.get("hosts") or []:
        _check_host(host, target)
    tls = copy.deepcopy(tls)
    if tls.get("secretName"):
        tls["secretName"] = target.name(tls["secretName"], namespace)
    return tls


def _check_host(host: str, target: Target) -> None:
    if host.startswith("*"):
        raise Refused(f"wildcard host {host}: name each host")
    if not target.policy.allows_host(host):
        allowed = ", ".join(target.policy.ingress_hosts) or "none"
        raise Refused(f"host name {host} is not one this host cluster lets the team use (allowed: {allowed})")


class Claims:
    """The host names one vcluster holds on the host cluster (see the module's docstring)."""

    def __init__(self, host: Client, holder: str):
        self.host = host
        self.holder = holder

    def take(self, hosts: set[str]) -> None:
        """Claim every one of `hosts` (those already ours stay ours), or raise Refused
        naming the first one another vcluster holds."""
        for name in sorted(hosts):
            holder = self._claim(name)
            if holder != self.holder:
                raise Refused(f"host name {name} is taken by another vcluster on this host cluster")

    def release_except(self, in_use: set[str]) -> None:
        listed = self.host.list(LEASES, CLAIMS_NAMESPACE, label_selector=f"{LABEL_HOLDER}={self.holder}")
        for lease in listed.get("items") or []:
            meta = lease["metadata"]
            if meta["name"] not in in_use and (lease.get("spec") or {}).get("holderIdentity") == self.holder:
                self.host.delete(LEASES, CLAIMS_NAMESPACE, meta["name"], uid=meta["uid"])

    def _claim(self, name: str) -> str | None:
        """The holder of `name` once we tried to claim it."""
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": CLAIMS_NAMESPACE, "labels": {LABEL_HOLDER: self.holder}},
                 "spec": {"holderIdentity": self.holder}}
        for _ in range(2):  # a claim deleted between our create and get: once more
            try:
                self.host.create(LEASES, CLAIMS_NAMESPACE, lease)
                return self.holder
            except ApiError as exc:
                if exc.status == 403:
                    raise Refused(f"this vcluster may not claim host names on the host cluster: {exc.message}") \
                        from None
                if exc.status != 409:
                    raise
            current = self.host.get_or_none(LEASES, CLAIMS_NAMESPACE, name)
            if current is not None:
                return (current.get("spec") or {}).get("holderIdentity")
        return None


class IngressSync(HostSync):
    def __init__(self, ctx, kind, workers: int = 1):
        super().__init__(ctx, kind, workers)
        self.claims = Claims(ctx.host, ctx.target.namespace)
        self._hosts: dict[str, set[str]] = {}  # by key: the host names last seen, to release on change

    def reconcile(self, key: str) -> float | None:
        again = super().reconcile(key)
        virtual = self.ctx.vinf[INGRESSES].get(key)
        hosts = ingress_hosts(virtual) if virtual is not None else set()
        if self._hosts.get(key) != hosts:  # also each key's first look since the start
            in_use = {h for ingress in self.ctx.vinf[INGRESSES].values() for h in ingress_hosts(ingress)}
            self.claims.release_except(in_use)
            if virtual is None:
                self._hosts.pop(key, None)
            else:
                self._hosts[key] = hosts
        return again

    def to_host(self, virtual: dict) -> dict:
        classes = offered(self.ctx.hinf[INGRESSCLASSES].values(), self.ctx.target)
        desired = host_ingress(virtual, self.ctx.target, classes)
        self.claims.take(ingress_hosts(virtual))
        return desired


    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        have = current.get("spec") or {}
        if any(desired["spec"].get(k) != have.get(k) for k in SPEC_FIELDS):
            patch["spec"] = {k: desired["spec"].get(k) for k in SPEC_FIELDS}
        return patch or None

    def after(self, virtual: dict, current: dict) -> None:
        """The host controller's addresses, on the virtual Ingress."""
        want = (current.get("status") or {}).get("loadBalancer") or {}
        if ((virtual.get("status") or {}).get("loadBalancer") or {}) != want:
            meta = virtual["metadata"]
            self.ctx.virtual.patch(INGRESSES, meta["namespace"], meta["name"],
                                   {"status": {"loadBalancer": want or {"ingress": None}}}, sub="status")


KIND = Kind(name="Ingress", resource=INGRESSES, controller=IngressSync, workers=1,
            indexes=(Index(VIRTUAL, INGRESSES, TLS_INDEX, tls_secrets),))
