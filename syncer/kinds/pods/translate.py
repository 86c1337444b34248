"""A virtual pod → its host pod, and the host pod's status → the virtual pod. Pure functions.

`host_pod` copies the spec, renames what the pod refers to (configmaps, secrets,
claims, its Service for `subdomain`), mounts the vcluster's service-account tokens from
the token Secret, scopes pod (anti-)affinity to the vcluster, and makes the pod safe
for the host (`syncer.kinds.pods.safety`), raising Refused when it cannot. With
`target.dns_ip` it points the pod's resolver at the vcluster's DNS; `routed_cluster_ip`
decides that address when the config names none. With `target.hosts_image`, a pod with a
`subdomain` gets its virtual names in `/etc/hosts` (`_virtual_etc_hosts`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from ... import names
from ...informer import key_of
from ...names import ANN_NAME, ANN_NAMESPACE, ANN_SERVICE_ACCOUNT, ANN_UID, LABEL_MANAGED_BY, LABEL_NAMESPACE
from ...recorder import now_iso
from ...translate import Target, require_label, scope_selector
from . import podcertificates, safety, trustbundles

CONFIGMAP, SECRET, PVC = "ConfigMap", "Secret", "PersistentVolumeClaim"
# The vcluster's, as controlplane.components.CLUSTER_DOMAIN (the syncer's image carries the syncer alone).
CLUSTER_DOMAIN = "cluster.local"
KUBERNETES_NAMES = (
    "kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
)
# Downward-API fields whose host value would be the host's: read from our annotations instead.
FIELD_REFS = {
    "metadata.name": f"metadata.annotations['{ANN_NAME}']",
    "metadata.namespace": f"metadata.annotations['{ANN_NAMESPACE}']",
    "metadata.uid": f"metadata.annotations['{ANN_UID}']",
    "spec.serviceAccountName": f"metadata.annotations['{ANN_SERVICE_ACCOUNT}']",
    "spec.serviceAccount": f"metadata.annotations['{ANN_SERVICE_ACCOUNT}']",
}
# Set by host admission from host objects (priority and runtime classes) or meaningless there;
# the priority class is then chosen among those the host offers (safety.host_priority_class).
DROPPED_POD_FIELDS = ("priority", "priorityClassName", "preemptionPolicy", "overhead", "schedulerName",
                      "serviceAccount")
# The annotation listing the tenant annotation keys copied to a host pod, so that a key
# the tenant removes is removed on the host too, while keys host components add stay.
ANN_COPIED = names.PREFIX + "copied-annotations"
HOSTNAME_LABEL = "kubernetes.io/hostname"
SCHEDULING_GATED = "SchedulingGated"  # the scheduler's reason
# The vcluster's DNS Service, as its CoreDNS add-on names it.
CLUSTER_DNS = "kube-system/kube-dns"
# The init container writing a pod's /etc/hosts with its virtual names, and the volume
# that holds the file for the pod's other containers.
ETC_HOSTS = "vcportal-etc-hosts"
ETC_HOSTS_PATH = "/etc/hosts"
# Restricted Pod Security, and no more of the namespace's quota than it needs.
ETC_HOSTS_SECURITY = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                      "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
ETC_HOSTS_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "16Mi"}}


@dataclass
class Refs:
    """What a pod needs that the syncer copies: name → True when the pod cannot start without it."""

    configmaps: dict[str, bool] = field(default_factory=dict)
    secrets: dict[str, bool] = field(default_factory=dict)
    pvcs: dict[str, bool] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, bool]:
        return {CONFIGMAP: self.configmaps, SECRET: self.secrets, PVC: self.pvcs}[kind]

    def note(self, kind: str, name: str, optional: bool) -> None:
        bucket = self.of(kind)
        bucket[name] = bucket.get(name, False) or not optional


@dataclass(frozen=True)
class TokenSource:
    """A service-account token a pod mounts, stored under `key` in its host token Secret."""

    key: str
    audience: str | None
    expiration_seconds: int


Rename = Callable[[str, str, bool], str]  # (kind, name, optional) → name to use


def pod_refs(pod: dict) -> Refs:
    refs = Refs()

    def note(kind: str, name: str, optional: bool) -> str:
        refs.note(kind, name, optional)
        return name

    _visit_refs(pod.get("spec") or {}, note)
    return refs


def _visit_refs(spec: dict, rename: Rename) -> None:
    """Call `rename` on every configmap, secret and claim the pod spec names, and put
    back what it returns."""
    for volume in spec.get("volumes") or []:
        _rename_in(volume.get("configMap"), "name", CONFIGMAP, rename)
        _rename_in(volume.get("secret"), "secretName", SECRET, rename)
        _rename_in(volume.get("persistentVolumeClaim"), "claimName", PVC, rename, optional=False)
        _rename_in((volume.get("csi") or {}).get("nodePublishSecretRef"), "name", SECRET, rename, optional=False)
        for source in (volume.get("projected") or {}).get("sources") or []:
            _rename_in(source.get("configMap"), "name", CONFIGMAP, rename)
            _rename_in(source.get("secret"), "name", SECRET, rename)
    for container in containers(spec):
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            _rename_in(value_from.get("configMapKeyRef"), "name", CONFIGMAP, rename)
            _rename_in(value_from.get("secretKeyRef"), "name", SECRET, rename)
        for source in container.get("envFrom") or []:
            _rename_in(source.get("configMapRef"), "name", CONFIGMAP, rename)
            _rename_in(source.get("secretRef"), "name", SECRET, rename)
    for pull_secret in spec.get("imagePullSecrets") or []:
        # The kubelet pulls without a missing pull secret rather than waiting for it.
        _rename_in(pull_secret, "name", SECRET, rename, optional=True)


def _rename_in(ref: dict | None, key: str, kind: str, rename: Rename, optional: bool | None = None) -> None:
    if not ref or not ref.get(key):
        return
    is_optional = bool(ref.get("optional")) if optional is None else optional
    new = rename(kind, ref[key], is_optional)
    if new != ref[key]:
        ref[key] = new


def containers(spec: dict) -> list[dict]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def token_sources(pod: dict) -> list[TokenSource]:
    """The distinct tokens the pod's projected volumes ask for, in a stable order."""
    seen: dict[tuple, TokenSource] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is not None:
                wanted = _token_request(token)
                if wanted not in seen:
                    seen[wanted] = TokenSource(f"token-{len(seen)}", *wanted)
    return list(seen.values())


def _token_request(projection: dict) -> tuple[str | None, int]:
    """(audience, expiration) of a serviceAccountToken projection; the API's default
    expiration is an hour."""
    return projection.get("audience") or None, int(projection.get("expirationSeconds") or 3600)


def host_pod(pod: dict, target: Target, token_secret: str | None, services: list[dict] = (),
             trust_bundles: str | None = None, certificates: str | None = None) -> dict:
    """The host copy of a virtual pod. `token_secret` names the host Secret that will hold
    the pod's service-account tokens (required when `token_sources(pod)` is not empty),
    `trust_bundles` the host ConfigMap that will hold the vcluster's trust bundles it
    projects (required when `trustbundles.bundle_sources(pod)` is not empty),
    `certificates` the host Secret that will hold its pod certificates (required when
    `podcertificates.certificate_sources(pod)` is not empty);
    `services`, the vcluster's Services in the pod's namespace that route on the host, give
    its containers their variables (`enableServiceLinks`). Raises Refused when the pod asks for what the host's
    policy does not allow."""
    meta = pod["metadata"]
    namespace = meta["namespace"]
    spec = copy.deepcopy(pod["spec"])
    safety.check_pod(spec, target.policy)
    _visit_refs(spec, lambda kind, name, optional: target.name(name, namespace))
    safety.sanitise_ephemeral_volumes(spec, namespace, target)
    owner_only = _owner_only_files(spec)
    _mount_tokens_from_secret(spec, token_sources(pod), token_secret, owner_only)
    _mount_trust_bundles_from_configmap(spec, trustbundles.bundle_sources(pod), trust_bundles, owner_only)
    _mount_certificates_from_secret(spec, podcertificates.certificate_sources(pod), certificates, owner_only)
    _rewrite_field_refs(spec)
    _scope_pod_selectors(spec, namespace, target.vcluster)
    _host_identity(spec, meta["name"], namespace, target)
    safety.confine_scheduling(spec, target.policy, target.nodes)
    _point_at_vcluster(spec, namespace, target, services if pod["spec"].get("enableServiceLinks", True) else ())
    _virtual_etc_hosts(spec, pod["spec"].get("subdomain"), namespace, target)

    labels, annotations = names.marks(target.vcluster, "Pod", pod)
    tenant_annotations = names.without_reserved(meta.get("annotations"))
    annotations[ANN_SERVICE_ACCOUNT] = pod["spec"].get("serviceAccountName") or "default"
    annotations[ANN_COPIED] = ",".join(sorted(tenant_annotations))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": target.name(meta["name"], namespace),
            "namespace": target.namespace,
            "labels": {**names.without_reserved(meta.get("labels")), **labels},
            "annotations": {**tenant_annotations, **annotations},
        },
        "spec": spec,
    }


def _mount_tokens_from_secret(spec: dict, tokens: list[TokenSource], secret: str | None, owner_only: bool) -> None:
    """Projected service-account tokens become items of the host token Secret: the host
    must not mint them (it would mint host tokens), the syncer puts virtual ones there."""
    keys = {(t.audience, t.expiration_seconds): t.key for t in tokens}
    for volume, i, token in _projections_of(spec, "serviceAccountToken"):
        if secret is None:
            raise ValueError("pod mounts service-account tokens but no token secret was given")
        item = _projected_item(keys[_token_request(token)], token, volume["projected"], owner_only)
        volume["projected"]["sources"][i] = {"secret": {"name": secret, "items": [item]}}


def _mount_trust_bundles_from_configmap(spec: dict, sources: list[trustbundles.BundleSource],
                                        configmap: str | None, owner_only: bool) -> None:
    """ClusterTrustBundle projections become keys of the host ConfigMap the syncer fills
    from the vcluster's bundles (the host's kubelet would read the host's). The items are
    never optional: a key is missing only for a required bundle that matched nothing."""
    keys = {(s.name, s.signer_name, s.selector, s.optional): s.key for s in sources}
    for volume, i, projection in _projections_of(spec, "clusterTrustBundle"):
        if configmap is None:
            raise ValueError("pod projects trust bundles but no ConfigMap was given")
        item = _projected_item(keys[trustbundles.request(projection)], projection, volume["projected"], owner_only)
        volume["projected"]["sources"][i] = {"configMap": {"name": configmap, "items": [item]}}


def _mount_certificates_from_secret(spec: dict, sources: list[podcertificates.CertificateSource],
                                    secret: str | None, owner_only: bool) -> None:
    """podCertificate projections become items of the host Secret the syncer fills with
    keys and certificates from the vcluster's signers (the host's kubelet would ask the
    host's). Missing until issued, so the pod waits as it would for its kubelet."""
    by_place = {(s.volume, s.index): s for s in sources}
    for volume, i, projection in _projections_of(spec, "podCertificate"):
        if secret is None:
            raise ValueError("pod projects certificates but no certificate secret was given")
        items = [_projected_item(key, {**projection, "path": path}, volume["projected"], owner_only)
                 for path, key in by_place[(volume["name"], i)].item_keys().items()]
        volume["projected"]["sources"][i] = {"secret": {"name": secret, "items": items}}


def _projections_of(spec: dict, source_kind: str) -> list[tuple[dict, int, dict]]:
    """(volume, index in its projected sources, projection) of each source of `source_kind`."""
    return [(volume, i, source[source_kind]) for volume in spec.get("volumes") or []
            for i, source in enumerate((volume.get("projected") or {}).get("sources") or []) if source_kind in source]


def _projected_item(key: str, projection: dict, projected: dict, owner_only: bool) -> dict:
    """The item standing for a file the kubelet writes itself (a token, a trust bundle, a
    key or certificate):
    its owner, and its mode 0600 when it has an owner, as the kubelet's own file has."""
    item = {"key": key, "path": projection["path"]}
    user = projection.get("user", projected.get("defaultUser"))
    if user is not None:
        item["user"] = user
    if owner_only or user is not None:
        item["mode"] = 0o600
    return item


def _owner_only_files(spec: dict) -> bool:
    """Whether the kubelet writes a pod's tokens, trust bundles and certificates owner-only: when the pod
    has an fsGroup, or all its containers run as one user (the kubelet's FsUserFrom)."""
    context = spec.get("securityContext") or {}
    if context.get("fsGroup") is not None:
        return True
    users = {(c.get("securityContext") or {}).get("runAsUser", context.get("runAsUser")) for c in containers(spec)}
    return len(users) == 1 and None not in users


def _rewrite_field_refs(spec: dict) -> None:
    def fix(ref: dict | None) -> None:
        if ref and ref.get("fieldPath") in FIELD_REFS:
            ref["fieldPath"] = FIELD_REFS[ref["fieldPath"]]

    for container in containers(spec):
        for env in container.get("env") or []:
            fix((env.get("valueFrom") or {}).get("fieldRef"))
    for volume in spec.get("volumes") or []:
        for item in (volume.get("downwardAPI") or {}).get("items") or []:
            fix(item.get("fieldRef"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            for item in (source.get("downwardAPI") or {}).get("items") or []:
                fix(item.get("fieldRef"))


def _scope_pod_selectors(spec: dict, namespace: str, vcluster: str) -> None:
    """Pod (anti-)affinity and topology spread select pods by label within namespaces. On
    the host all of a vcluster's pods share one namespace, so the virtual namespaces
    become label requirements. A namespaceSelector cannot be evaluated on the host: such
    a term matches the pods of every namespace of this vcluster."""
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        for term in rules.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            _scope_term(term, namespace, vcluster)
        for weighted in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            _scope_term(weighted.get("podAffinityTerm") or {}, namespace, vcluster)
    for constraint in spec.get("topologySpreadConstraints") or []:
        if constraint.get("labelSelector") is not None:
            scope_selector(constraint["labelSelector"], namespace, vcluster)


def _scope_term(term: dict, namespace: str, vcluster: str) -> None:
    namespaces = term.pop("namespaces", None) or []
    namespace_selector = term.pop("namespaceSelector", None)
    selector = term.get("labelSelector")
    if selector is None:  # a term without a selector matches nothing: keep it so
        return
    require_label(selector, LABEL_MANAGED_BY, [vcluster])
    if namespace_selector is None:
        require_label(selector, LABEL_NAMESPACE, namespaces or [namespace])


def _host_identity(spec: dict, name: str, namespace: str, target: Target) -> None:
    priority_class = safety.host_priority_class(spec, target)
    for field_name in DROPPED_POD_FIELDS:
        spec.pop(field_name, None)
    if priority_class:
        spec["priorityClassName"] = priority_class
    spec["serviceAccountName"] = target.service_account
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    node = spec.pop("nodeName", None)
    # Asked for by the tenant (or set by the syncer's binding): honoured through the host
    # scheduler, never around it, and only where the policy lets pods choose their node.
    if node and HOSTNAME_LABEL in target.policy.node_label_keys:
        spec.setdefault("nodeSelector", {})[HOSTNAME_LABEL] = node
    if not spec.get("hostname") and _is_dns_label(name):
        spec["hostname"] = name
    if spec.get("subdomain"):
        spec["subdomain"] = target.name(spec["subdomain"], namespace)


def _point_at_vcluster(spec: dict, namespace: str, target: Target, services: list[dict]) -> None:
    # The kubelet gives every container the host's `kubernetes` Service variables and,
    # as the host pod has enableServiceLinks off, no others: these take their place. As
    # the kubelet's, a Service of the pod's own namespace wins over `default/kubernetes`.
    variables = [variable for service in services if key_of(service) != "default/kubernetes"
                 for variable in service_variables(service["metadata"]["name"], service.get("spec") or {})]
    if target.api_endpoint:
        host, port = target.api_endpoint
        spec.setdefault("hostAliases", []).append({"ip": host, "hostnames": list(KUBERNETES_NAMES)})
        named = {v["name"] for v in variables}
        variables += [v for v in service_variables("kubernetes", {"clusterIP": host, "ports": [
            {"name": "https", "port": port, "protocol": "TCP"}]}) if v["name"] not in named]
    for container in containers(spec) if variables else ():
        env = container.setdefault("env", [])
        present = {e["name"] for e in env}
        env[:0] = [v for v in variables if v["name"] not in present]  # the container's own win
    if target.dns_ip and spec.get("dnsPolicy", "ClusterFirst") in ("ClusterFirst", "ClusterFirstWithHostNet"):
        tenant = spec.get("dnsConfig") or {}
        spec["dnsPolicy"] = "None"
        spec["dnsConfig"] = {
            "nameservers": [target.dns_ip, *(tenant.get("nameservers") or [])],
            "searches": [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN,
                         *(tenant.get("searches") or [])],
            "options": tenant.get("options") or [{"name": "ndots", "value": "5"}],
        }


def _virtual_etc_hosts(spec: dict, subdomain: str | None, namespace: str, target: Target) -> None:
    """The kubelet writes a pod with a subdomain into its /etc/hosts as
    `<hostname>.<subdomain>.<namespace>.svc.<domain>`: the host's names, which nothing in
    the vcluster resolves (what `hostname -f` answers, and many clustered servers
    advertise). A first init container writes the kubelet's file with the virtual name
    instead into a volume every other container mounts there, as the kubelet would have:
    not over a container's own /etc/hosts mount, nor in ephemeral containers (which
    cannot mount a subPath): those keep the kubelet's."""
    labels = (spec.get("hostname"), subdomain, namespace, spec.get("subdomain"), target.namespace)
    # The API servers allow DNS labels only; checked again, as they become a sed expression.
    if not target.hosts_image or not all(names.DNS_LABEL.match(label or "") for label in labels) \
            or _names_taken(spec, ETC_HOSTS):
        return
    host_name = r"\.".join((spec["hostname"], spec["subdomain"], target.namespace, "svc"))
    virtual_name = f'{spec["hostname"]}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}'
    rewrite = rf"s/([[:space:]]){host_name}\.[^[:space:]]+/\1{virtual_name}/"
    mount = {"name": ETC_HOSTS, "mountPath": ETC_HOSTS_PATH, "subPath": "hosts"}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if all(m.get("mountPath") != ETC_HOSTS_PATH for m in container.get("volumeMounts") or []):
            container.setdefault("volumeMounts", []).append(dict(mount))
    spec.setdefault("volumes", []).append({"name": ETC_HOSTS, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    spec["initContainers"] = [{
        "name": ETC_HOSTS, "image": target.hosts_image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", f'sed -E "$1" {ETC_HOSTS_PATH} > /out/hosts', "sh", rewrite],
        "volumeMounts": [{"name": ETC_HOSTS, "mountPath": "/out"}],
        "securityContext": ETC_HOSTS_SECURITY, "resources": ETC_HOSTS_RESOURCES,
    }, *(spec.get("initContainers") or [])]


def _names_taken(spec: dict, name: str) -> bool:
    """Whether the tenant named a volume or container `name` (then /etc/hosts stays the kubelet's)."""
    return any(item.get("name") == name for item in [*(spec.get("volumes") or []), *containers(spec)])


def service_variables(name: str, spec: dict) -> list[dict]:
    """The variables the kubelet gives containers for a Service: `<NAME>_SERVICE_HOST`,
    `_SERVICE_PORT[_<PORT NAME>]` and the Docker links `<NAME>_PORT[_<port>_<PROTO>[_…]]`;
    none for a Service without a ClusterIP (headless, ExternalName)."""
    ip, ports = spec.get("clusterIP"), spec.get("ports") or []
    if ip in (None, "", "None") or not ports:
        return []
    prefix = _variable_name(name)
    address = f"[{ip}]" if ":" in ip else ip
    pairs = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", ports[0]["port"])]
    pairs += [(f"{prefix}_SERVICE_PORT_{_variable_name(p['name'])}", p["port"]) for p in ports if p.get("name")]
    first = ports[0]
    pairs.append((f"{prefix}_PORT", f"{first.get('protocol', 'TCP').lower()}://{address}:{first['port']}"))
    for port in ports:
        protocol = port.get("protocol", "TCP")
        link = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
        pairs += [(link, f"{protocol.lower()}://{address}:{port['port']}"), (f"{link}_PROTO", protocol.lower()),
                  (f"{link}_PORT", port["port"]), (f"{link}_ADDR", ip)]
    return [{"name": key, "value": str(value)} for key, value in pairs]


def _variable_name(name: str) -> str:
    return name.upper().replace("-", "_")


def routed_cluster_ip(service: dict | None, host_copies: list[dict]) -> str | None:
    """A virtual Service's ClusterIP once a host copy has the same one (the Services kind
    recreates the virtual Service with the host's IP); until then it routes nowhere, and
    this is None. Host pods are given only such addresses (the vcluster's DNS, Service
    variables)."""
    ip = (service or {}).get("spec", {}).get("clusterIP")
    if ip in (None, "", "None"):
        return None
    return ip if any(copy["spec"].get("clusterIP") == ip for copy in host_copies) else None


def _is_dns_label(name: str) -> bool:
    return len(name) <= 63 and "." not in name


def for_create(desired: dict) -> dict:
    """`desired` as a pod may be created: ephemeral containers are only ever added to a
    running pod (ephemeral_containers_patch)."""
    spec = {k: v for k, v in desired["spec"].items() if k != "ephemeralContainers"}
    return {**desired, "spec": spec}


def ephemeral_containers_patch(desired: dict, actual: dict) -> dict | None:
    """The ephemeral containers (`kubectl debug`) of the virtual pod its host pod lacks,
    as a strategic-merge patch of the host pod's `ephemeralcontainers` subresource; None
    when there are none. Kubernetes never changes or removes one once added."""
    present = {c["name"] for c in actual["spec"].get("ephemeralContainers") or []}
    added = [c for c in desired["spec"].get("ephemeralContainers") or [] if c["name"] not in present]
    return {"spec": {"ephemeralContainers": added}} if added else None


def pod_patch(desired: dict, actual: dict) -> dict | None:
    """A strategic-merge patch for what may change on a running pod: labels, annotations,
    images, activeDeadlineSeconds and added tolerations. None when nothing differs."""
    patch: dict = {}
    metadata = _metadata_patch(desired["metadata"], actual["metadata"])
    if metadata:
        patch["metadata"] = metadata
    spec: dict = {}
    for kind in ("initContainers", "containers"):
        actual_images = {c["name"]: c.get("image") for c in actual["spec"].get(kind) or [] if c["name"] != ETC_HOSTS}
        changed = [{"name": c["name"], "image": c["image"]} for c in desired["spec"].get(kind) or []
                   if c["name"] in actual_images and actual_images[c["name"]] != c.get("image")]
        if changed:
            spec[kind] = changed
    deadline = desired["spec"].get("activeDeadlineSeconds")
    if deadline != actual["spec"].get("activeDeadlineSeconds") and deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    tolerations = actual["spec"].get("tolerations") or []
    missing = [t for t in desired["spec"].get("tolerations") or [] if t not in tolerations]
    if missing:
        spec["tolerations"] = tolerations + missing
    if spec:
        patch["spec"] = spec
    return patch or None


def resize_patch(desired: dict, actual: dict) -> dict | None:
    """A strategic-merge patch of the host pod's `resize` subresource: the requests and
    limits of the pod and of each of its containers that the virtual pod sets to another
    value (an in-place resize, `kubectl patch --subresource resize`). None when none does.
    What the host added (its LimitRange's defaults) stays: only the tenant's values move."""
    spec: dict = {}
    for kind in ("initContainers", "containers"):
        actual_resources = {c["name"]: c.get("resources") or {} for c in actual["spec"].get(kind) or []
                            if c["name"] != ETC_HOSTS}
        changed = [{"name": c["name"], "resources": patch} for c in desired["spec"].get(kind) or []
                   if c["name"] in actual_resources
                   and (patch := _resources_patch(c.get("resources") or {}, actual_resources[c["name"]]))]
        if changed:
            spec[kind] = changed
    pod_resources = _resources_patch(desired["spec"].get("resources") or {}, actual["spec"].get("resources") or {})
    if pod_resources:
        spec["resources"] = pod_resources
    return {"spec": spec} if spec else None


def _resources_patch(desired: dict, actual: dict) -> dict:
    return {key: changed for key in ("requests", "limits")
            if (changed := {name: value for name, value in (desired.get(key) or {}).items()
                            if (actual.get(key) or {}).get(name) != value})}


def _metadata_patch(desired: dict, actual: dict) -> dict:
    patch = {}
    labels = _map_patch(desired.get("labels") or {}, actual.get("labels") or {}, remove=None)
    if labels:
        patch["labels"] = labels
    previously = set(filter(None, (actual.get("annotations") or {}).get(ANN_COPIED, "").split(",")))
    annotations = _map_patch(desired.get("annotations") or {}, actual.get("annotations") or {}, remove=previously)
    if annotations:
        patch["annotations"] = annotations
    return patch


def _map_patch(desired: dict, actual: dict, remove: set | None) -> dict:
    """Set what differs; null what `desired` lacks (only keys in `remove`, if given)."""
    patch = {k: v for k, v in desired.items() if actual.get(k) != v}
    for key in actual:
        if key not in desired and (remove is None or key in remove):
            patch[key] = None
    return patch


def pod_status_patch(host_status: dict, virtual_status: dict, generation_offset: int | None = 0) -> dict | None:
    """The host pod's status for the virtual pod, as a merge patch; None when equal.
    The QoS class is the virtual API server's own; a nominated node is host business,
    and so is the init container writing /etc/hosts.

    Generations are each API server's own: `generation_offset`, the virtual pod's
    generation less the host pod's once the virtual spec is pushed down, turns the host's
    observed generations into the virtual pod's; None (a spec the syncer cannot translate
    under a narrowed policy) keeps the virtual pod's."""
    keep = ("qosClass",)
    desired = {k: v for k, v in host_status.items() if k not in keep and k != "nominatedNodeName"}
    init_statuses = [c for c in desired.pop("initContainerStatuses", None) or [] if c.get("name") != ETC_HOSTS]
    if init_statuses:
        desired["initContainerStatuses"] = init_statuses
    _observed_generations(desired, virtual_status, generation_offset)
    patch = {k: v for k, v in desired.items() if virtual_status.get(k) != v}
    for key in virtual_status:
        if key not in desired and key not in keep:
            patch[key] = None
    return patch or None


def with_virtual_resources(host_status: dict, virtual_spec: dict) -> dict:
    """The host pod's status with only the requests and limits the virtual pod's containers
    set in their `resources` and `allocatedResources`: what the host's LimitRange added
    is the host's (as its spec is), and a status showing it would never match the spec a
    tenant, a controller or the conformance suite compares it with."""
    specs = {c["name"]: c.get("resources") or {} for kind in ("initContainers", "containers")
             for c in virtual_spec.get(kind) or []}
    status = dict(host_status)
    for key in ("initContainerStatuses", "containerStatuses"):
        if host_status.get(key):
            status[key] = [_virtual_container_resources(c, specs[c["name"]]) if c.get("name") in specs else c
                           for c in host_status[key]]
    return status


def _virtual_container_resources(status: dict, resources: dict) -> dict:
    status = dict(status)
    if "allocatedResources" in status:
        _set_or_drop(status, "allocatedResources", _only(status["allocatedResources"], resources.get("requests")))
    if "resources" in status:
        actual = dict(status["resources"])
        for key in ("requests", "limits"):
            _set_or_drop(actual, key, _only(actual.get(key), resources.get(key)))
        status["resources"] = actual
    return status


def _only(values: dict | None, keys: dict | None) -> dict | None:
    return {k: v for k, v in (values or {}).items() if k in (keys or {})} or None


def with_infeasible_resize(host_status: dict, virtual_status: dict, why: str) -> dict:
    """The host pod's status plus what a kubelet says of a resize it cannot make
    (`PodResizePending`, reason `Infeasible`), here for a resize the host refused."""
    condition = {"type": "PodResizePending", "status": "True", "reason": "Infeasible", "message": why}
    since = [c.get("lastTransitionTime") for c in virtual_status.get("conditions") or []
             if c.get("type") == condition["type"] and c.get("reason") == condition["reason"]]
    condition["lastTransitionTime"] = since[0] if since else now_iso()
    conditions = [c for c in host_status.get("conditions") or [] if c.get("type") != condition["type"]]
    return {**host_status, "conditions": [*conditions, condition]}


def _observed_generations(status: dict, virtual_status: dict, offset: int | None) -> None:
    def virtual(host_generation: int | None, previous: int | None) -> int | None:
        if host_generation is None:
            return None
        return previous if offset is None else max(host_generation + offset, 1)

    _set_or_drop(status, "observedGeneration",
                 virtual(status.get("observedGeneration"), virtual_status.get("observedGeneration")))
    previous = {c.get("type"): c.get("observedGeneration") for c in virtual_status.get("conditions") or []}
    if status.get("conditions"):
        status["conditions"] = [_set_or_drop(dict(c), "observedGeneration",
                                             virtual(c.get("observedGeneration"), previous.get(c.get("type"))))
                                for c in status["conditions"]]


def _set_or_drop(mapping: dict, key: str, value) -> dict:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value
    return mapping


def gated_status_patch(status: dict) -> dict | None:
    """The PodScheduled condition a scheduler gives a pod with scheduling gates, as a
    merge patch of its status; None when it has it."""
    if any(c.get("type") == "PodScheduled" and c.get("reason") == SCHEDULING_GATED
           for c in status.get("conditions") or []):
        return None
    condition = {"type": "PodScheduled", "status": "False", "reason": SCHEDULING_GATED,
                 "message": "Scheduling is blocked due to non-empty scheduling gates",
                 "lastTransitionTime": now_iso()}
    return {"conditions": [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            + [condition]}


def was_scheduled(pod: dict) -> bool:
    """True once the virtual pod has carried a host pod's status: nothing else in a
    vcluster (no scheduler, no kubelet) sets PodScheduled=True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in conditions)
