"""NetworkPolicies, vcluster → host: a tenant's policy, enforced by the host's network
plugin on the host copies of its pods, and only ever narrowing what the vcluster's own
isolation allows (provisioning.manifests.network_policies).

That isolation lets a vcluster's pods talk among themselves, receive from the host's
ingress controllers and reach the public internet. A tenant's policy selecting a pod
isolates it, on the host as in any cluster: the syncer marks such host pods
(ISOLATED[...]), the namespace-wide policy no longer selects them, and the host copies
of the tenant's policies say what they may still do. Every part of a copy stays inside
the vcluster:
- the pod selector, and every peer's, is narrowed to this vcluster's pods (of the
  policy's namespace; for a peer with a namespace selector, of the virtual namespaces it
  selects now, followed as namespaces and their labels change);
- a rule without peers ("from/to everywhere") means every pod of the vcluster, and for
  egress the public internet too;
- an egress `ipBlock` keeps only its public part (the private ranges the isolation
  refuses are added to its `except`); one inside a private range, any ingress `ipBlock`
  (outside sources are not admitted at all) and IPv6 blocks are dropped, with a Warning
  event; a rule left without peers is dropped with them (no peers would mean everywhere).
The host's ingress controllers still reach isolated pods: the tenant cannot name them,
and they only forward what the tenant's own Ingresses route (a policy of provisioning's
admits them to every pod).
"""

from __future__ import annotations

import copy
import ipaddress

from .. import names
from ..controller import HostSync
from ..kind import VIRTUAL, Kind, Watch
from ..kube import NAMESPACES, NETWORKPOLICIES
from ..translate import Target, host_object, marks_patch, require_label, scope_selector, selector_matches

# On host pods a tenant policy isolates, by direction: the vcluster-wide policy skips them.
ISOLATED = {"Ingress": names.PREFIX + "isolated-ingress", "Egress": names.PREFIX + "isolated-egress"}
# What no vcluster pod may reach: private ranges (the host's network), link-local (cloud
# metadata), shared address space and loopback.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8")
PUBLIC = {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}
MATCHES_NOTHING = {"matchExpressions": [{"key": names.PREFIX + "matches-nothing", "operator": "Exists"}]}


def policy_types(policy: dict) -> list[str]:
    """As the API defaults them: Ingress always, Egress when there are egress rules."""
    spec = policy.get("spec") or {}
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def isolation_labels(pod: dict, policies: list[dict]) -> dict[str, str]:
    """ISOLATED labels for the host copy of `pod`, given the policies of its namespace."""
    labels = pod["metadata"].get("labels") or {}
    selecting = [p for p in policies if selector_matches((p.get("spec") or {}).get("podSelector") or {}, labels)]
    return {ISOLATED[t]: "true" for t in ISOLATED if any(t in policy_types(p) for p in selecting)}


def host_network_policy(policy: dict, target: Target, namespaces: dict[str, dict]) -> tuple[dict, list[str]]:
    """The host copy, and what was dropped from it (to tell the tenant). `namespaces` are
    the vcluster's namespaces' labels, by name."""
    spec, namespace = policy.get("spec") or {}, policy["metadata"]["namespace"]
    scope = Scope(namespace, target.vcluster, namespaces)
    dropped: list[str] = []
    types = policy_types(policy)
    host_spec = {"podSelector": scope.pods(spec.get("podSelector")), "policyTypes": types}
    for kind, direction, peers in (("Ingress", "ingress", "from"), ("Egress", "egress", "to")):
        if kind in types:
            rules = (_rule(rule, peers, scope, dropped) for rule in spec.get(direction) or [])
            host_spec[direction] = [rule for rule in rules if rule is not None]
    return host_object("NetworkPolicy", policy, target, apiVersion="networking.k8s.io/v1", spec=host_spec), dropped


class Scope:
    """Selectors of this vcluster's host pods."""

    def __init__(self, namespace: str, vcluster: str, namespaces: dict[str, dict]):
        self.namespace, self.vcluster, self.namespaces = namespace, vcluster, namespaces

    def pods(self, selector: dict | None, namespaces: list[str] | None = None) -> dict:
        """`selector` narrowed to the vcluster's pods in `namespaces` (default: the policy's)."""
        selector = copy.deepcopy(selector or {})
        if namespaces is None:
            scope_selector(selector, self.namespace, self.vcluster)
        elif namespaces:
            require_label(selector, names.LABEL_MANAGED_BY, [self.vcluster])
            require_label(selector, names.LABEL_NAMESPACE, namespaces)
        else:
            return copy.deepcopy(MATCHES_NOTHING)
        return selector

    def everything(self) -> dict:
        selector: dict = {}
        require_label(selector, names.LABEL_MANAGED_BY, [self.vcluster])
        return {"podSelector": selector}

    def selected_namespaces(self, selector: dict) -> list[str]:
        return sorted(name for name, labels in self.namespaces.items() if selector_matches(selector, labels))


def _rule(rule: dict, key: str, scope: Scope, dropped: list[str]) -> dict | None:
    if rule.get("ports"):  # with the protocol the API defaults, so the copy compares equal
        host_rule = {"ports": [{"protocol": "TCP", **port} for port in rule["ports"]]}
    else:
        host_rule = {}
    if not rule.get(key):
        host_rule[key] = [scope.everything(), *([copy.deepcopy(PUBLIC)] if key == "to" else [])]
        return host_rule
    peers = [p for p in (_peer(peer, key, scope, dropped) for peer in rule[key]) if p is not None]
    if not peers:
        return None
    host_rule[key] = peers
    return host_rule


def _peer(peer: dict, key: str, scope: Scope, dropped: list[str]) -> dict | None:
    if "ipBlock" in peer:
        block = _public_part(peer["ipBlock"]) if key == "to" else None
        if block is None:
            dropped.append(f"ipBlock {peer['ipBlock'].get('cidr')} ({'egress' if key == 'to' else 'ingress'})")
            return None
        return {"ipBlock": block}
    if "namespaceSelector" in peer:
        namespaces = scope.selected_namespaces(peer["namespaceSelector"] or {})
        return {"podSelector": scope.pods(peer.get("podSelector"), namespaces)}
    return {"podSelector": scope.pods(peer.get("podSelector"))}


def _public_part(block: dict) -> dict | None:
    """`block` without the private ranges, or None when nothing public is left."""
    try:
        cidr = ipaddress.ip_network(block["cidr"], strict=False)
    except ValueError:
        return None
    if cidr.version != 4:
        return None
    private = [ipaddress.ip_network(r) for r in PRIVATE_RANGES]
    if any(cidr.subnet_of(r) for r in private):
        return None
    excluded = {*(block.get("except") or []), *(str(r) for r in private if r.subnet_of(cidr))}
    return {"cidr": str(cidr), **({"except": sorted(excluded)} if excluded else {})}


class NetworkPolicySync(HostSync):
    def to_host(self, virtual: dict) -> dict:
        namespaces = {ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
                      for ns in self.ctx.vinf[NAMESPACES].values()}
        desired, dropped = host_network_policy(virtual, self.ctx.target, namespaces)
        if dropped:
            self.ctx.recorder.warn(virtual, self.kind.name, "PeersDropped",
                                   "these peers would reach outside the vcluster and are not enforced on the host: "
                                   + ", ".join(dropped))
        return desired

    def patch(self, desired: dict, current: dict) -> dict | None:
        patch = marks_patch(desired, current)
        if desired["spec"] != current.get("spec"):
            patch["spec"] = {k: desired["spec"].get(k) for k in ("podSelector", "policyTypes", "ingress", "egress")}
        return patch or None


def _every_policy(ctx, old: dict | None, new: dict | None) -> list[str]:
    """A namespace's labels may change which namespaces a peer selects."""
    return [] if old is not None and new is not None and old["metadata"].get("labels") == \
        new["metadata"].get("labels") else ctx.vinf[NETWORKPOLICIES].keys()


KIND = Kind(name="NetworkPolicy", resource=NETWORKPOLICIES, controller=NetworkPolicySync,
            watches=(Watch(VIRTUAL, NAMESPACES, _every_policy),))
