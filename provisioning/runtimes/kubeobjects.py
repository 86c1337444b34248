"""A vcluster's control plane as host objects, for the `kubernetes` runtime: keys and
manifests as pure functions, unit tested; runtimes.kubernetes applies them.

Everything runs in ONE pod of a StatefulSet (one replica, so a deleted pod comes back
on the same volume) in the vcluster's host namespace:

    kine                     the etcd API over SQLite on the PVC, on the pod's loopback
    kube-apiserver           :6443, the only port offered beyond the pod (Service vcluster-api)
    kube-controller-manager  loopback only
    syncer                   host rights from a projected token of the vcportal-syncer
                             ServiceAccount, mounted into its container alone; its kubelet
                             and metrics APIs on loopback (the API server is in the same pod); /readyz
                             on :8081 for the kubelet's probe; the API server's only way into
                             the cluster (syncer.egress), a socket on a volume of these two

Each container sees only the keys it needs (items of one Secret). The pod runs under
Pod Security `restricted`: a non-root user, no privilege escalation, no capabilities,
RuntimeDefault seccomp, read-only root filesystems. Every container has requests and
limits, and they count against the namespace's quota, which provisioning raises by
exactly `share()` (as for the vcluster's CoreDNS): tenants keep all of their own.

The API server lets anonymous requests read only /livez, /readyz and /healthz (an
AuthenticationConfiguration), so the kubelet's probes and the worker's readiness check
need no credentials, and everything else still needs a client certificate.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml

from controlplane import components, kubeconfig, pki
from controlplane.components import AUDIT_POLICY, CLUSTER_DOMAIN, HEALTH_ONLY_AUTHENTICATION, SERVICE_CIDR
from controlplane.kubeconfig import ADMIN_USER
from syncer.config import SyncerConfig
from syncer.metricsapi import SERVICE_HOST as METRICS_SERVICE_HOST
from syncer.policy import TenantPolicy

from ..manifests import VCLUSTER_LABEL, _meta

STATEFULSET = "vcluster"
POD = f"{STATEFULSET}-0"
SERVICE = "vcluster-api"
PKI_SECRET = "vcluster-pki"
SYNCER_SECRET = "vcluster-syncer"
POLICY = "vcluster-control-plane"
DATA = "data"
PVC = f"{DATA}-{POD}"
COMPONENT_LABEL = "vcportal.io/component"  # tenants cannot set vcportal.io/ labels on host pods
API_PORT = 6443
SERVICE_PORT = 443
SYNCER_HEALTH_PORT = 8081
KUBELET_ADDRESS = "127.0.0.1:10250"
METRICS_ADDRESS = "127.0.0.1:10251"
KCM_PORT = 10257
USER_ID = 65532  # the runtime image's user
DATA_DIR = "/var/lib/vcluster"
PKI_DIR = "/etc/vcluster/pki"
SYNCER_DIR = "/etc/vcluster/syncer"
HOST_TOKEN_DIR = "/var/run/secrets/vcportal/host"
EGRESS_DIR = "/var/run/vcportal/egress"  # a volume of the API server's and the syncer's alone
EGRESS_SOCKET = f"{EGRESS_DIR}/egress.sock"
STORAGE = "1Gi"
HOST_API_TOKEN_SECONDS = 3600
CONFIG_HASH = "vcportal.io/config-hash"

# Where the pod's parts are, as its containers see them.
LAYOUT = components.Layout(
    pki=PurePosixPath(PKI_DIR), kine_listen="127.0.0.1:2379",
    datastore=components.sqlite_datastore(PurePosixPath(DATA_DIR) / "state.db"),
    audit=(PurePosixPath(PKI_DIR) / "audit-policy.yaml", PurePosixPath(DATA_DIR) / "audit.log"),
    egress=PurePosixPath(PKI_DIR) / "egress-selector.yaml",
    admission=PurePosixPath(PKI_DIR) / "admission.yaml",
)

# requests, limits per container; limits are what the quota share counts.
RESOURCES = {
    # The API server's start-up writes and lists everything once, through kine: a
    # quarter of a CPU throttled kine for half of those seconds and made the start
    # seconds slower; so did a limit of one CPU for the API server itself.
    "kine": ({"cpu": "25m", "memory": "32Mi"}, {"cpu": "1", "memory": "128Mi"}),
    "kube-apiserver": ({"cpu": "100m", "memory": "256Mi"}, {"cpu": "2", "memory": "640Mi"}),
    "kube-controller-manager": ({"cpu": "50m", "memory": "64Mi"}, {"cpu": "500m", "memory": "256Mi"}),
    "syncer": ({"cpu": "50m", "memory": "64Mi"}, {"cpu": "500m", "memory": "256Mi"}),
}
EPHEMERAL = ({"ephemeral-storage": "16Mi"}, {"ephemeral-storage": "64Mi"})

# Which keys each container mounts from the PKI Secret.
PKI_OF = {
    "kube-apiserver": ("ca.crt", "sa.pub", "sa.key", "kube-apiserver.crt", "kube-apiserver.key",
                       "kubelet-client.crt", "kubelet-client.key", "authentication.yaml", "audit-policy.yaml",
                       "egress-selector.yaml", "admission.yaml", components.WEBHOOK_CREDENTIALS,
                       "front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key"),
    "kube-controller-manager": ("ca.crt", "ca.key", "sa.key", "kube-controller-manager.crt",
                                "kube-controller-manager.key", "kube-controller-manager.kubeconfig"),
    "syncer": ("ca.crt", "syncer.kubeconfig", "syncer-kubelet.crt", "syncer-kubelet.key", "syncer-metrics.crt",
               "syncer-metrics.key", "front-proxy-ca.crt"),
}


@dataclass(frozen=True)
class Access:
    """How tenants reach the API server: the Service type, and the address to put in
    kubeconfigs once known (a node's, the load balancer's, or the ingress host)."""

    mode: str  # nodeport | loadbalancer | ingress | clusterip
    address: str = ""

    @property
    def service_type(self) -> str:
        return {"nodeport": "NodePort", "loadbalancer": "LoadBalancer"}.get(self.mode, "ClusterIP")


def ingress_host(namespace: str, domain: str) -> str:
    return f"{namespace}.{domain}"


def server_url(access: Access, node_port: int | None) -> str:
    """The API server's URL as tenants reach it."""
    host = f"[{access.address}]" if ":" in access.address else access.address  # IPv6
    if access.mode == "nodeport":
        return f"https://{host}:{node_port}"
    return f"https://{host}"


def server_names(namespace: str, service_ip: str, access_address: str, service_cidr: str = SERVICE_CIDR) -> list[str]:
    """What the API server's certificate names: how tenants reach it from outside, how
    the vcluster's pods reach it (the Service's address and DNS names; inside, the
    `kubernetes` names and its Service's address), and loopback for the pod's own components."""
    inside = str(ipaddress.ip_network(service_cidr)[1])
    names = ["127.0.0.1", "localhost", inside, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{CLUSTER_DOMAIN}", service_ip, SERVICE, f"{SERVICE}.{namespace}",
             f"{SERVICE}.{namespace}.svc", access_address]
    return list(dict.fromkeys(n for n in names if n))


# Keys ------------------------------------------------------------------------
def new_keys(name: str, api_names: list[str]) -> dict[str, str]:
    """Every key and certificate of a new control plane, file name -> PEM or YAML text."""
    ca = pki.new_ca(f"vcportal-{name}-ca")
    sa = pki.new_key()
    files = {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem, "sa.key": pki.key_pem(sa), "sa.pub": pki.public_key_pem(sa)}
    files.update(_pair("kube-apiserver", pki.issue(ca, "kube-apiserver", server_names=tuple(api_names))))
    files.update(_pair("kubelet-client", pki.issue(
        ca, "kube-apiserver-kubelet-client", organizations=("system:masters",), client=True)))
    files.update(_pair("kube-controller-manager", pki.issue(ca, "kube-controller-manager", server_names=("127.0.0.1",))))
    files.update(_pair("syncer-kubelet", pki.issue(ca, "vcportal-syncer-kubelet", server_names=("127.0.0.1",))))
    local = f"https://127.0.0.1:{API_PORT}"
    files["kube-controller-manager.kubeconfig"] = _client_kubeconfig(ca, name, local, "system:kube-controller-manager")
    files["syncer.kubeconfig"] = _client_kubeconfig(ca, name, local, "vcportal-syncer", ("system:masters",))
    texts = {k: v.decode() if isinstance(v, bytes) else v for k, v in files.items()}
    keys = {**texts, "authentication.yaml": HEALTH_ONLY_AUTHENTICATION, "audit-policy.yaml": AUDIT_POLICY}
    return complete_keys(keys, name)


def complete_keys(keys: dict[str, str], name: str) -> dict[str, str]:
    """`keys` with what a control plane made by an older version lacks: the aggregation
    layer's (controlplane.pki.front_proxy_files), the syncer's metrics API's, the egress
    selector that sends the API server's calls into the cluster through the syncer, and
    its credentials towards the syncer's webhook (syncer.admission)."""
    added: dict[str, bytes | str] = {"egress-selector.yaml": components.egress_selector_configuration(EGRESS_SOCKET),
                                     "admission.yaml": components.admission_configuration(LAYOUT.pki),
                                     components.WEBHOOK_CREDENTIALS: components.webhook_credentials(LAYOUT.pki)}
    if "front-proxy-client.key" not in keys:
        added.update(pki.front_proxy_files(name))
    if "syncer-metrics.key" not in keys:
        added.update(_pair("syncer-metrics", pki.issue(_ca(keys), "vcportal-syncer-metrics",
                                                       server_names=(METRICS_SERVICE_HOST,))))
    return {**keys, **{k: v if isinstance(v, str) else v.decode() for k, v in added.items()}}


def reissue_api_certificate(keys: dict[str, str], api_names: list[str]) -> dict[str, str]:
    """The same keys with a serving certificate for new names (a Service address or an
    access address that changed); the CA, and so every kubeconfig, stays valid."""
    pair = pki.issue(_ca(keys), "kube-apiserver", server_names=tuple(api_names))
    return {**keys, **{k: v.decode() for k, v in _pair("kube-apiserver", pair).items()}}


def admin_kubeconfig(keys: dict[str, str], name: str, server: str) -> str:
    return _client_kubeconfig(_ca(keys), name, server, ADMIN_USER, ("system:masters",))


def _ca(keys: dict[str, str]) -> pki.KeyPair:
    return pki.KeyPair(keys["ca.crt"].encode(), keys["ca.key"].encode())


def _pair(name: str, pair: pki.KeyPair) -> dict[str, bytes]:
    return {f"{name}.crt": pair.cert_pem, f"{name}.key": pair.key_pem}


def _client_kubeconfig(ca: pki.KeyPair, name: str, server: str, user: str, groups: tuple[str, ...] = ()) -> str:
    cert = pki.issue(ca, user, organizations=groups, client=True)
    return kubeconfig.render(name, server, ca.cert_pem, cert, user)


# The syncer's files ------------------------------------------------------------
def syncer_files(*, vcluster: str, namespace: str, service_ip: str, host_server: str,
                 policy: TenantPolicy, hosts_image: str | None = None) -> dict[str, str]:
    """syncer.yaml and the host kubeconfig it names: in-cluster credentials, the pod's
    projected token (the kubelet rotates it; the syncer re-reads it)."""
    config = SyncerConfig(
        vcluster=vcluster, host_namespace=namespace,
        virtual_kubeconfig=f"{PKI_DIR}/syncer.kubeconfig", host_kubeconfig=f"{SYNCER_DIR}/host.kubeconfig",
        api_endpoint=f"{service_ip}:{SERVICE_PORT}",
        health_address=f"0.0.0.0:{SYNCER_HEALTH_PORT}", kubelet_address=KUBELET_ADDRESS,
        kubelet_cert=f"{PKI_DIR}/syncer-kubelet.crt", kubelet_key=f"{PKI_DIR}/syncer-kubelet.key",
        kubelet_client_ca=f"{PKI_DIR}/ca.crt", metrics_address=METRICS_ADDRESS,
        metrics_cert=f"{PKI_DIR}/syncer-metrics.crt", metrics_key=f"{PKI_DIR}/syncer-metrics.key",
        metrics_ca=f"{PKI_DIR}/ca.crt", metrics_client_ca=f"{PKI_DIR}/front-proxy-ca.crt",
        egress_socket=EGRESS_SOCKET, policy=policy, hosts_image=hosts_image,
    )
    host = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "host", "cluster": {"server": host_server,
                                                  "certificate-authority": f"{HOST_TOKEN_DIR}/ca.crt"}}],
        "users": [{"name": "syncer", "user": {"tokenFile": f"{HOST_TOKEN_DIR}/token"}}],
        "contexts": [{"name": "host", "context": {"cluster": "host", "user": "syncer", "namespace": namespace}}],
        "current-context": "host",
    }
    return {"syncer.yaml": config.dump(), "host.kubeconfig": yaml.safe_dump(host, sort_keys=False)}


# Manifests ---------------------------------------------------------------------
def pod_labels(owner_labels: dict) -> dict[str, str]:
    return {COMPONENT_LABEL: "control-plane", VCLUSTER_LABEL: owner_labels[VCLUSTER_LABEL]}


def secret(name: str, ns: str, owner_labels: dict, files: dict[str, str]) -> dict:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(files.items())}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, ns, owner_labels), "type": "Opaque",
            "data": data}


def config_hash(*file_sets: dict[str, str]) -> str:
    """Changes when any mounted file does: the pod template carries it, so new keys or a
    new syncer config roll the pod instead of waiting for the kubelet to notice."""
    return hashlib.sha256(json.dumps(file_sets, sort_keys=True).encode()).hexdigest()[:16]


def service(ns: str, owner_labels: dict, access: Access, cluster_ip: str | None, node_port: int | None) -> dict:
    """The API server's Service. A recreated Service asks for the address and node port
    the old one had, so certificates, kubeconfigs and tenant pods stay valid."""
    port = {"name": "https", "protocol": "TCP", "port": SERVICE_PORT, "targetPort": API_PORT}
    if node_port and access.service_type != "ClusterIP":
        port["nodePort"] = node_port
    # Not-ready addresses too: the pod is NotReady whenever any container is (a syncer
    # restarting), and tenants should still reach the API server, the only one there is.
    spec = {"type": access.service_type, "selector": pod_labels(owner_labels), "ports": [port],
            "publishNotReadyAddresses": True}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(SERVICE, ns, owner_labels), "spec": spec}


def ingress(ns: str, owner_labels: dict, host: str) -> dict:
    """TLS passes through to the API server (client certificates must reach it), which
    needs an ingress controller that can pass TLS through: ingress-nginx with
    --enable-ssl-passthrough reads these annotations."""
    meta = _meta(SERVICE, ns, owner_labels)
    meta["annotations"] = {"nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                           "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}
    backend = {"service": {"name": SERVICE, "port": {"number": SERVICE_PORT}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def network_policy(ns: str, owner_labels: dict, host_api: list[tuple[str, int]]) -> dict:
    """On top of the namespace's policies: anyone may reach the API server's port (its
    clients come through a node port, a load balancer or an ingress controller, and it
    authenticates them), and the pod may reach the host's API server (the syncer)."""
    to_host = [{"to": [{"ipBlock": {"cidr": f"{ip}/32"}}], "ports": [{"protocol": "TCP", "port": port}]}
               for ip, port in host_api]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(POLICY, ns, owner_labels),
        "spec": {
            "podSelector": {"matchLabels": pod_labels(owner_labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": API_PORT}]}],
            "egress": to_host,
        },
    }


def statefulset(ns: str, owner_labels: dict, *, image: str, storage_class: str | None, hash_: str,
                service_cidr: str = SERVICE_CIDR) -> dict:
    """`service_cidr` is the host's Service range: the syncer gives each virtual Service
    its host copy's address, which the vcluster's API server takes only from its own range."""
    labels = pod_labels(owner_labels)
    claim = _claim_template(owner_labels, storage_class)
    pod = {
        "metadata": {"labels": {**owner_labels, **labels}, "annotations": {CONFIG_HASH: hash_}},
        "spec": {
            "serviceAccountName": "vcportal-syncer",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                                "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
            # Sidecars (restartable init containers) start in order, each once the one
            # before is started: kine, then the syncer (it waits for the API by itself,
            # loading Python overlaps the API server's start, and its egress socket is
            # there before the API server calls anything), then the API server,
            # whose startup probe holds back the controller manager until the API is
            # ready, so that it does not crash-loop on an API without its bootstrap RBAC.
            "initContainers": [_sidecar(_kine(image)), _sidecar(_syncer(image)),
                               _sidecar(_apiserver(image, service_cidr))],
            "containers": [_controller_manager(image)],
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                {"name": "egress", "emptyDir": {"sizeLimit": "1Mi"}},
                *(_pki_volume(c) for c in PKI_OF),
                {"name": "syncer-config", "secret": {"secretName": SYNCER_SECRET, "defaultMode": 0o440}},
                {"name": "host-token", "projected": {"defaultMode": 0o440, "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": HOST_API_TOKEN_SECONDS}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]}},
            ],
        },
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(STATEFULSET, ns, owner_labels),
        "spec": {
            # No claim retention policy: the default keeps the claim when the StatefulSet
            # is deleted (repair brings it back with its data; teardown deletes the claim
            # itself), and the policy's owner references, added to a claim the scheduler
            # is binding, made every first scheduling attempt fail and wait its back-off.
            "replicas": 1, "serviceName": SERVICE, "selector": {"matchLabels": labels},
            "template": pod, "volumeClaimTemplates": [claim],
        },
    }


def _claim_template(owner_labels: dict, storage_class: str | None) -> dict:
    claim = {
        "metadata": {"name": DATA, "labels": owner_labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": STORAGE}}},
    }
    if storage_class:
        claim["spec"]["storageClassName"] = storage_class
    return claim


def _sidecar(container: dict) -> dict:
    return {**container, "restartPolicy": "Always"}


def containers(pod_spec: dict) -> list[dict]:
    """Every container of the pod, sidecars first."""
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _pki_volume(component: str) -> dict:
    items = [{"key": key, "path": key} for key in PKI_OF[component]]
    return {"name": f"pki-{component}", "secret": {"secretName": PKI_SECRET, "defaultMode": 0o440, "items": items}}


def _container(name: str, image: str, command: list[str], mounts: list[dict]) -> dict:
    requests, limits = RESOURCES[name]
    return {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
        "resources": {"requests": {**requests, **EPHEMERAL[0]}, "limits": {**limits, **EPHEMERAL[1]}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
    }


def _pki_mount(component: str) -> dict:
    return {"name": f"pki-{component}", "mountPath": PKI_DIR, "readOnly": True}


EGRESS_MOUNT = {"name": "egress", "mountPath": EGRESS_DIR}


def _kine(image: str) -> dict:
    return _container("kine", image, ["/usr/local/bin/kine", *components.kine_args(LAYOUT)],
                      [{"name": DATA, "mountPath": DATA_DIR}])


def _apiserver(image: str, service_cidr: str) -> dict:
    args = components.apiserver_args(
        LAYOUT, bind="0.0.0.0", advertise="$(POD_IP)", port=API_PORT, service_cidr=service_cidr,
        health_only_anonymous=True,
    )
    container = _container("kube-apiserver", image, ["/usr/local/bin/kube-apiserver", *args],
                           [_pki_mount("kube-apiserver"), {"name": DATA, "mountPath": DATA_DIR}, EGRESS_MOUNT])
    probe = {"scheme": "HTTPS", "port": API_PORT}
    container.update({
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "https", "containerPort": API_PORT, "protocol": "TCP"}],
        "startupProbe": {"httpGet": {**probe, "path": "/readyz"}, "periodSeconds": 1, "failureThreshold": 300},
        "readinessProbe": {"httpGet": {**probe, "path": "/readyz"}, "periodSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {**probe, "path": "/livez"}, "periodSeconds": 10, "failureThreshold": 6},
    })
    return container


def _controller_manager(image: str) -> dict:
    args = components.controller_manager_args(LAYOUT, LAYOUT.pki / "kube-controller-manager.kubeconfig", KCM_PORT)
    return _container("kube-controller-manager", image, ["/usr/local/bin/kube-controller-manager", *args],
                      [_pki_mount("kube-controller-manager")])


def _syncer(image: str) -> dict:
    container = _container("syncer", image, ["python3", "-m", "syncer", "--config", f"{SYNCER_DIR}/syncer.yaml"], [
        _pki_mount("syncer"),
        {"name": "syncer-config", "mountPath": SYNCER_DIR, "readOnly": True},
        {"name": "host-token", "mountPath": HOST_TOKEN_DIR, "readOnly": True},
        EGRESS_MOUNT,
    ])
    probe = {"port": SYNCER_HEALTH_PORT}
    container.update({
        "readinessProbe": {"httpGet": {**probe, "path": "/readyz"}, "periodSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {**probe, "path": "/healthz"}, "initialDelaySeconds": 30, "periodSeconds": 10},
    })
    return container


def share(access: Access) -> dict[str, int]:
    """What the control plane takes of the namespace quota, in manifests.Share's terms:
    its pod's limits, its claim, and the node port or load balancer of its Service.
    (One more pod also makes room for its Service and two Secrets in the object counts.)"""
    # Sidecars run beside the other containers, so the pod's total is their sum.
    cpu = sum(_millicores(limits["cpu"]) for _, limits in RESOURCES.values())
    memory = sum(_bytes(limits["memory"]) for _, limits in RESOURCES.values())
    return {"cpu_millicores": cpu, "memory_bytes": memory, "pods": 1, "storage_bytes": _bytes(STORAGE),
            "nodeports": int(access.mode in ("nodeport", "loadbalancer")),
            "loadbalancers": int(access.mode == "loadbalancer")}


def _millicores(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(value) * 1000


def _bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(value[:-2]) * units[value[-2:]]
