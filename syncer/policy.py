"""What a host cluster lets its tenants ask of it, beyond what every tenant may.

A platform admin sets this per host cluster (provisioning's HostCluster); provisioning
writes it into each syncer's config, and the syncer enforces it when it translates a
virtual object for the host. Everything not listed is stripped or refused: the empty
policy is the safe default.

    policy:
      csi_drivers: [secrets-store.csi.k8s.io]     # inline CSI volumes allowed, by driver name
      tolerations:                                 # tolerations a tenant pod may carry
        - {key: dedicated, operator: Equal, value: tenants, effect: NoSchedule}
      node_label_keys: [topology.kubernetes.io/zone]  # host node labels pods may select on
      runtime_classes: [gvisor]                    # runtimeClassName values allowed
      storage_classes: [fast-ssd]                  # host StorageClasses claims may name (the default: always)
      priority_classes: [tenant-high]              # host PriorityClasses tenant pods may get (never system-)
      external_name_services: false                # Services of type ExternalName
      ingress_hosts: ["*.{team}.apps.example.com"]  # host names tenant Ingresses may claim ({team}: the team's slug)
      ingress_classes: [public]                    # host IngressClasses tenant Ingresses may name (the default: always)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

TOLERATION_KEYS = ("key", "operator", "value", "effect")
TEAM = "{team}"  # in ingress_hosts: the team's slug, filled in per vcluster (for_team)
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class TenantPolicy:
    csi_drivers: tuple[str, ...] = ()
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()
    node_label_keys: tuple[str, ...] = ()
    runtime_classes: tuple[str, ...] = ()
    storage_classes: tuple[str, ...] = ()
    priority_classes: tuple[str, ...] = ()
    external_name_services: bool = False
    ingress_hosts: tuple[str, ...] = ()
    ingress_classes: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: dict | None) -> TenantPolicy:
        values = values or {}
        if not isinstance(values, dict):
            raise PolicyError("a policy is a mapping of its keys")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise PolicyError(f"unknown policy keys: {', '.join(sorted(unknown))}")
        return cls(
            csi_drivers=_strings(values, "csi_drivers"),
            tolerations=tuple(_toleration(t) for t in _list(values, "tolerations", "tolerations")),
            node_label_keys=_strings(values, "node_label_keys"),
            runtime_classes=_strings(values, "runtime_classes"),
            storage_classes=_strings(values, "storage_classes"),
            priority_classes=_priority_classes(values),
            external_name_services=_boolean(values, "external_name_services"),
            ingress_hosts=_host_patterns(values),
            ingress_classes=_strings(values, "ingress_classes"),
        )

    def to_dict(self) -> dict:
        return {
            "csi_drivers": list(self.csi_drivers),
            "tolerations": [dict(t) for t in self.tolerations],
            "node_label_keys": list(self.node_label_keys),
            "runtime_classes": list(self.runtime_classes),
            "storage_classes": list(self.storage_classes),
            "priority_classes": list(self.priority_classes),
            "external_name_services": self.external_name_services,
            "ingress_hosts": list(self.ingress_hosts),
            "ingress_classes": list(self.ingress_classes),
        }

    def for_team(self, team: str) -> TenantPolicy:
        """This policy as one team's vclusters get it: `{team}` in ingress_hosts is its slug."""
        hosts = {pattern.replace(TEAM, team) for pattern in self.ingress_hosts}
        return dataclasses.replace(self, ingress_hosts=tuple(sorted(hosts)))

    def allows_host(self, host: str) -> bool:
        """True if an Ingress may claim the host name `host`: one of ingress_hosts, or
        under one of its `*.` patterns (at any depth: every name there is the team's)."""
        return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.ingress_hosts)

    def allows_toleration(self, toleration: dict) -> bool:
        """True if `toleration` is one the policy lists (all four fields equal; a
        missing operator is Equal, as the API server defaults it). How long a NoExecute
        toleration lasts is the tenant's to choose."""
        return _toleration({k: toleration.get(k) for k in TOLERATION_KEYS}) in self.tolerations


def _list(values: dict, name: str, of: str) -> list:
    items = values.get(name) or []
    if not isinstance(items, list | tuple):
        raise PolicyError(f"{name} must be a list of {of}")
    return list(items)


def _strings(values: dict, name: str) -> tuple[str, ...]:
    items = _list(values, name, "non-empty strings")
    if not all(isinstance(i, str) and i for i in items):
        raise PolicyError(f"{name} must be a list of non-empty strings")
    return tuple(sorted(set(items)))


def _priority_classes(values: dict) -> tuple[str, ...]:
    names = _strings(values, "priority_classes")
    system = [n for n in names if n.startswith("system-")]
    if system:
        raise PolicyError(f"priority_classes cannot offer the host's system classes: {', '.join(system)}")
    return names


def _host_patterns(values: dict) -> tuple[str, ...]:
    patterns = _strings(values, "ingress_hosts")
    bad = [p for p in patterns if not HOST_NAME.match(p.removeprefix("*.").replace(TEAM, "team"))]
    if bad:
        raise PolicyError("ingress_hosts are lower-case DNS names, each maybe starting with `*.` and naming "
                          f"{TEAM} for the team's slug; not: {', '.join(bad)}")
    return patterns


def _boolean(values: dict, name: str) -> bool:
    value = values.get(name, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{name} must be true or false")
    return value


def _toleration(toleration) -> tuple[tuple[str, str], ...]:
    if not isinstance(toleration, dict) or set(toleration) - set(TOLERATION_KEYS):
        raise PolicyError(f"a toleration is a mapping of {', '.join(TOLERATION_KEYS)}; got {toleration!r}")
    normal = {"operator": "Equal", **{k: v for k, v in toleration.items() if v not in (None, "")}}
    if not all(isinstance(v, str) for v in normal.values()):
        raise PolicyError(f"toleration fields are strings; got {toleration!r}")
    return tuple((k, normal[k]) for k in TOLERATION_KEYS if k in normal)
