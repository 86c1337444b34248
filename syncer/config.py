"""The syncer's configuration: a small YAML (or JSON) file, one per vcluster.

    vcluster: team-a-dev                 # DNS label; suffix of host names, value of the managed-by label
    virtual_kubeconfig: vc.kubeconfig    # the vcluster's API, with admin rights
    host_kubeconfig: host.kubeconfig     # the host API, limited to host_namespace (see syncer.rbac)
    host_namespace: vc-team-a-dev
    resync_period: 300                   # seconds between full reconciles (optional)
    host_service_account: default        # what host pods run as (optional)
    api_endpoint: 10.96.12.34:443        # the vcluster API as host pods reach it (optional)
    dns_ip: 10.96.12.35                  # the vcluster's DNS as host pods reach it (optional, see below)
    workers: 8                           # pod workers (optional)
    health_address: 127.0.0.1:8081       # serves /healthz and /readyz (optional)
    kubelet_address: 127.0.0.1:10250     # serves the vcluster's kubelet API (optional; see syncer.kubelet)
    kubelet_cert: kubelet.crt            # its serving certificate and key, from the vcluster's CA
    kubelet_key: kubelet.key
    kubelet_client_ca: ca.crt            # the CA whose client certificates it accepts: the vcluster's
    metrics_address: 127.0.0.1:10251     # serves the vcluster's metrics.k8s.io (optional; see syncer.metricsapi)
    metrics_cert: metrics.crt            # its serving certificate and key, for vcportal-metrics.kube-system.svc
    metrics_key: metrics.key
    metrics_ca: ca.crt                   # the CA of that certificate (the APIService's caBundle)
    metrics_client_ca: front-proxy-ca.crt  # the CA of the API server's front-proxy certificate
    egress_socket: egress.sock           # the API server's way out: CONNECT, unix socket (optional; syncer.egress)
    hosts_image: busybox:1.37            # sh and sed: virtual names in /etc/hosts of pods with a subdomain (optional)
    policy:                              # what the host lets tenants ask of it (optional; see syncer.policy)
      csi_drivers: [secrets-store.csi.k8s.io]

Relative paths are relative to the file. Without `kubelet_address`, virtual Nodes carry
no address and the vcluster's API server answers `kubectl logs`/`exec`/`attach`/
`port-forward` with an error: nothing in the vcluster reaches the host's kubelets.

Without `dns_ip`, the syncer finds the vcluster's DNS itself: the ClusterIP of its
`kube-system/kube-dns` Service, once the host copy of that Service has the same
address (so that it routes); pods created from then on resolve through it, pods
created before keep the host's resolver. An explicit `dns_ip` wins.

`health_address` may be a wildcard (`0.0.0.0:8081`) for a kubelet probing a pod's IP;
`kubelet_address` must be an address the vcluster's API server reaches, as it is
published on the virtual Nodes (`127.0.0.1:10250` beside it in one pod); so must
`metrics_address`, which the syncer registers in the vcluster as its metrics.k8s.io.
Without it the vcluster has no metrics API (`kubectl top` says so). `egress_socket` is
where the vcluster's API server, given an egress selector naming it, sends what it calls
"the cluster" (webhooks, aggregated APIs, kubelet calls); without it nothing listens there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .names import DNS_LABEL
from .policy import PolicyError, TenantPolicy
from .translate import Target

# A vcluster name is part of every host name; the portal allows 40 characters.
MAX_VCLUSTER = 40
# File names in the config, relative to the file when read from one.
PATHS = ("virtual_kubeconfig", "host_kubeconfig", "kubelet_cert", "kubelet_key", "kubelet_client_ca",
         "metrics_cert", "metrics_key", "metrics_ca", "metrics_client_ca", "egress_socket")
METRICS_FILES = ("metrics_cert", "metrics_key", "metrics_ca", "metrics_client_ca")


class ConfigError(ValueError):
    pass


@dataclass
class SyncerConfig:
    vcluster: str
    virtual_kubeconfig: Path
    host_kubeconfig: Path
    host_namespace: str
    resync_period: float = 300
    host_service_account: str = "default"
    api_endpoint: str | None = None
    dns_ip: str | None = None
    workers: int = 8
    health_address: str | None = None
    kubelet_address: str | None = None
    kubelet_cert: Path | None = None
    kubelet_key: Path | None = None
    kubelet_client_ca: Path | None = None
    metrics_address: str | None = None
    metrics_cert: Path | None = None
    metrics_key: Path | None = None
    metrics_ca: Path | None = None
    metrics_client_ca: Path | None = None
    egress_socket: Path | None = None
    hosts_image: str | None = None
    policy: TenantPolicy = field(default_factory=TenantPolicy)
    # The file this was read from, if any.
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("vcluster", "host_namespace"):
            value = getattr(self, name)
            if not isinstance(value, str) or not DNS_LABEL.match(value):
                raise ConfigError(f"{name} must be a DNS label, got {value!r}")
        if len(self.vcluster) > MAX_VCLUSTER:
            raise ConfigError(f"vcluster must be at most {MAX_VCLUSTER} characters")
        if self.resync_period <= 0 or self.workers <= 0:
            raise ConfigError("resync_period and workers must be positive")
        for name in PATHS:
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        if isinstance(self.policy, dict):
            try:
                self.policy = TenantPolicy.from_dict(self.policy)
            except PolicyError as exc:
                raise ConfigError(f"policy: {exc}") from None
        self.api_address()
        self.health_listen_address()
        if self.kubelet_listen_address() and None in (self.kubelet_cert, self.kubelet_key, self.kubelet_client_ca):
            raise ConfigError("kubelet_address needs kubelet_cert, kubelet_key and kubelet_client_ca")
        if self.metrics_listen_address() and None in (getattr(self, name) for name in METRICS_FILES):
            raise ConfigError(f"metrics_address needs {', '.join(METRICS_FILES)}")

    def api_address(self) -> tuple[str, int] | None:
        return _address("api_endpoint", self.api_endpoint)

    def health_listen_address(self) -> tuple[str, int] | None:
        return _address("health_address", self.health_address)

    def kubelet_listen_address(self) -> tuple[str, int] | None:
        return _address("kubelet_address", self.kubelet_address)

    def metrics_listen_address(self) -> tuple[str, int] | None:
        return _address("metrics_address", self.metrics_address)

    def target(self) -> Target:
        return Target(
            vcluster=self.vcluster,
            namespace=self.host_namespace,
            service_account=self.host_service_account,
            api_endpoint=self.api_address(),
            dns_ip=self.dns_ip,
            kubelet_endpoint=self.kubelet_listen_address(),
            policy=self.policy,
            hosts_image=self.hosts_image,
        )

    def dump(self) -> str:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}
        values = {k: _plain(v) for k, v in values.items() if v is not None}
        return yaml.safe_dump(values, sort_keys=False)


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, TenantPolicy):
        return value.to_dict()
    return value


def _address(name: str, value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{name} must be IP:PORT, got {value!r}")
    return host, int(port)


def load(path: Path | str) -> SyncerConfig:
    path = Path(path).resolve()
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read syncer config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping")
    known = {f.name for f in dataclasses.fields(SyncerConfig)} - {"path"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    try:
        config = SyncerConfig(**values, path=path)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{path}: {exc}") from None
    for name in PATHS:
        if getattr(config, name) is not None:
            setattr(config, name, path.parent / getattr(config, name))
    return config


def vcluster_config_path(vcluster_id: int | str) -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / "vclusters" / str(vcluster_id) / "syncer.yaml"


def for_vcluster(vcluster_id: int | str) -> SyncerConfig:
    """The config provisioning stored for the portal's vcluster `vcluster_id`."""
    from django.core.management.base import CommandError

    path = vcluster_config_path(vcluster_id)
    if not path.exists():
        raise CommandError(f"provisioning has not stored a syncer config for vcluster {vcluster_id} ({path})")
    return load(path)
