"""The flags each component of a control plane runs with, whichever runtime runs it.

A component's flags are a function of its Layout (where the keys, the datastore and
the audit log are: a state directory on the worker, or paths in a pod) and of a few
choices that differ by design between the runtimes, each named as an argument. The
embedded host cluster (localkube) builds its own API server from the same function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath

SERVICE_CIDR = "10.96.0.0/16"  # where the host's Service range cannot be read (before ServiceCIDR objects)
CLUSTER_DOMAIN = "cluster.local"
SERVICE_ACCOUNT_ISSUER = f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}"
HEALTH_PATHS = "/healthz,/readyz,/livez"
# The API server's identity towards aggregated APIs (metrics.k8s.io): the only name its
# front-proxy CA signs (pki.front_proxy_files), and the only one whose X-Remote-User an
# aggregated server believes.
FRONT_PROXY_CLIENT = "front-proxy-client"
SQLITE_OPTIONS = "_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate"
WEBHOOK_CREDENTIALS = "webhook-credentials.kubeconfig"  # beside the keys: admission_configuration
ADMISSION_PLUGINS = "NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,PodSecurity,NodeRestriction"

# What a vcluster's API server logs: who changed what, never a request or response body
# (Metadata level: Secrets stay out of the log), and no reads. Changes made through the
# portal's gateway name the person it impersonates (impersonatedUser).
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""

# Anonymous requests may read the health paths and nothing else: probes and readiness
# checks need no credentials, everything else a client certificate.
HEALTH_ONLY_AUTHENTICATION = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions: [{path: /livez}, {path: /readyz}, {path: /healthz}]
"""


def egress_selector_configuration(socket: str) -> str:
    """Everything the API server calls in "the cluster" (webhooks and aggregated APIs by
    Service, the pods/services proxy, kubelets) and at URLs (webhooks by URL) goes as
    `CONNECT host:port` to `socket`, where the vcluster's syncer lets through only what
    belongs to the vcluster (syncer.egress)."""
    connection = {"proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": socket}}}
    selections = [{"name": name, "connection": connection} for name in ("cluster", "controlplane")]
    return json.dumps({"apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
                       "egressSelections": selections}, indent=2)


def admission_configuration(pki: PurePath) -> str:
    """Webhooks, mutating and validating, are called with the client certificate
    WEBHOOK_CREDENTIALS beside the keys names (webhook_credentials): the front-proxy
    client's, the only one the syncer's webhooks (syncer.admission) let in."""
    webhooks = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "WebhookAdmissionConfiguration",
                "kubeConfigFile": str(pki / WEBHOOK_CREDENTIALS)}
    plugins = [{"name": name, "configuration": webhooks}
               for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")]
    return json.dumps({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
                       "plugins": plugins}, indent=2)


def webhook_credentials(pki: PurePath) -> str:
    """A kubeconfig of users only, each named by the webhook host it is for ("*": every
    host), naming the front-proxy client's files beside the keys. The API server proves
    it holds the key without giving it away, so a webhook server learns nothing it could
    use elsewhere."""
    user = {"client-certificate": str(pki / "front-proxy-client.crt"),
            "client-key": str(pki / "front-proxy-client.key")}
    return json.dumps({"apiVersion": "v1", "kind": "Config", "users": [{"name": "*", "user": user}]}, indent=2)


@dataclass(frozen=True)
class Layout:
    """Where a control plane's parts are, as its processes see them."""

    pki: PurePath  # keys and certificates, under the names new_keys and localkube give them
    kine_listen: str  # kine's listener: a unix socket, or loopback inside a pod
    datastore: str  # kine's --endpoint
    audit: tuple[PurePath, PurePath] | None = None  # (policy file, log file); host clusters keep none
    egress: PurePath | None = None  # egress_selector_configuration's file, if the syncer is the way out
    admission: PurePath | None = None  # admission_configuration's file, if the syncer serves a webhook

    @property
    def etcd(self) -> str:
        """kine's listener as the API server names it."""
        return self.kine_listen if self.kine_listen.startswith("unix://") else f"http://{self.kine_listen}"


def sqlite_datastore(path: PurePath) -> str:
    return f"sqlite://{path}?{SQLITE_OPTIONS}"


def kine_args(layout: Layout) -> list[str]:
    return [f"--listen-address={layout.kine_listen}", "--metrics-bind-address=0", f"--endpoint={layout.datastore}"]


def apiserver_args(layout: Layout, *, bind: str, advertise: str, port: int, service_cidr: str = SERVICE_CIDR,
                   health_only_anonymous: bool = False, calls_kubelets: bool = True,
                   priority_and_fairness: bool = False, aggregator_routing: bool = False) -> list[str]:
    """kube-apiserver's flags. `health_only_anonymous` reads HEALTH_ONLY_AUTHENTICATION
    from authentication.yaml beside the keys (else anonymous requests are refused);
    `calls_kubelets` gives it a client certificate for kubelets (logs, exec: a real
    node's, or in a vcluster its syncer's); API Priority and Fairness shares an API
    server between many clients, where a vcluster's serves one tenant, and skipping
    its bootstrap saves ~1.4 s of start. The aggregation layer (metrics.k8s.io) calls
    aggregated APIs with the front-proxy client certificate (pki.front_proxy_files);
    `aggregator_routing` sends those calls to a Service's endpoints instead of its
    ClusterIP, for an API server that reaches pods but no Service address."""
    pki = layout.pki
    args = [
        f"--etcd-servers={layout.etcd}",
        f"--bind-address={bind}",
        f"--advertise-address={advertise}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
        f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        (f"--authentication-config={pki / 'authentication.yaml'}" if health_only_anonymous
         else "--anonymous-auth=false"),
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={ADMISSION_PLUGINS}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        # Else its discovery document names the advertised address (loopback here), which
        # no pod reaches: under the issuer's name a pod checks its token with the keys.
        f"--service-account-jwks-uri={SERVICE_ACCOUNT_ISSUER}/openid/v1/jwks",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={service_cidr}",
        "--allow-privileged=true",
        # Its address is loopback or a pod's, not a valid Endpoint of `kubernetes`.
        "--endpoint-reconciler-type=none",
        # On SIGTERM it stops listening at once, but without this its clients' open watches
        # hold the process up to its request timeout (a minute): a restart took 20 s.
        "--shutdown-watch-termination-grace-period=2s",
        "--profiling=false",
        f"--enable-priority-and-fairness={str(priority_and_fairness).lower()}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        f"--enable-aggregator-routing={str(aggregator_routing).lower()}",
    ]
    if calls_kubelets:
        args += [
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # Node names resolve nowhere; the InternalIP is the node's (or syncer's) address.
            "--kubelet-preferred-address-types=InternalIP",
        ]
    if layout.egress:
        args.append(f"--egress-selector-config-file={layout.egress}")
    if layout.admission:
        args.append(f"--admission-control-config-file={layout.admission}")
    if layout.audit:
        policy, log = layout.audit
        # Rotated at 10 MiB with two old files kept: under 30 MiB.
        args += [f"--audit-policy-file={policy}", f"--audit-log-path={log}", "--audit-log-maxsize=10",
                 "--audit-log-maxbackup=2", "--audit-log-maxage=7"]
    return args


def client_component_args(name: str, pki: PurePath, kubeconfig: PurePath, port: int) -> list[str]:
    """A component that works through the API server with `kubeconfig` (the controller
    manager, a host's scheduler): its health served over TLS on loopback with the
    certificate `name`.crt, the only one of it, so no leader election."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={pki / f'{name}.crt'}",
        f"--tls-private-key-file={pki / f'{name}.key'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager_args(layout: Layout, kubeconfig: PurePath, port: int) -> list[str]:
    pki = layout.pki
    return [
        *client_component_args("kube-controller-manager", pki, kubeconfig, port),
        "--use-service-account-credentials=true",
        # Building each controller's client creates its ServiceAccount and asks for a
        # token, some 150 requests through one client; at the default 20 per second
        # that alone held the controllers (and the `view` role's rules) back 5 s.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--controllers=*",
    ]
