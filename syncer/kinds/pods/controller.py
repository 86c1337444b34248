"""Pods: the virtual pod runs as a host pod; the host pod's node and status come back.

Life of a pod, by what the reconcile of its key finds:
- a virtual pod with scheduling gates and no host pod → say it is gated, as a scheduler
  would, and wait for the gates to go;
- a virtual pod and no host pod → copy what it needs (configmaps, secrets, claims),
  create the host pod, then its ConfigMap of the vcluster's trust bundles it projects and
  its token Secret (issued again once the pod is bound, so that its tokens name the node,
  as a kubelet's do), and once bound, ask the vcluster's signers for the certificates it
  projects; or wait, with an Event, for a missing
  secret or configmap; or report, with an Event, why the host (or the host cluster's
  tenant policy) refused it;
- both → push down what may change (labels, annotations, images, an in-place resize,
  `kubectl debug`'s containers), bind the virtual pod to the host pod's node once
  scheduled, copy the status back, and keep its trust bundles, certificates and tokens
  current;
- a virtual pod that once ran, and no host pod → someone deleted the host pod: delete
  the virtual pod too, so that its controller replaces it;
- a virtual pod being deleted → delete the host pod with the same grace period, then,
  once it is gone, finish deleting the virtual pod (what a kubelet would do);
- only a host pod → delete it.

The Target a pod is translated with is the config's, plus the vcluster's DNS address
once its `kube-dns` Service routes on the host (`translate.routed_cluster_ip`, from the
informers' caches) when the config names none: pods created from then on resolve
through the vcluster's DNS, without a restart; pods created before keep the host's.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from datetime import datetime

from ... import names
from ...controller import REFUSALS, Controller
from ...informer import key_of
from ...kube import (
    CLUSTERTRUSTBUNDLES, CONFIGMAPS, NETWORKPOLICIES, NODES, PODCERTIFICATEREQUESTS, PODS, PVCS, SECRETS,
    SERVICEACCOUNTS, SERVICES, ApiError, Resource,
)
from ...translate import NotOffered, Refused, Target
from ..networkpolicies import isolation_labels
from ..priorityclasses import with_offered
from ..storageclasses import with_host_default
from . import podcertificates, translate, trustbundles

logger = logging.getLogger(__name__)

ANN_REFRESH = names.PREFIX + "token-refresh-at"
# The node the tokens were issued for ("" before the pod was bound).
ANN_NODE = names.PREFIX + "token-node"
# Tokens are renewed at this fraction of their lifetime, as the kubelet does.
REFRESH_AT = 0.8
# On a pod's certificate Secret, per projection ("…-cert-0"): the request the signer has not
# answered yet, when to ask again, and why a signer refused (final, as on a kubelet).
ANN_REQUEST, ANN_RENEW, ANN_REFUSED = (names.PREFIX + "request-", names.PREFIX + "renew-", names.PREFIX + "refused-")
DEPENDENCIES = ((CONFIGMAPS, translate.CONFIGMAP, "configmap"), (SECRETS, translate.SECRET, "secret"),
                (PVCS, translate.PVC, "persistentvolumeclaim"))


class PodController(Controller):
    def __init__(self, ctx, kind, workers: int = 2):
        super().__init__(ctx, kind, workers)
        self.vpods = ctx.vinf[PODS]
        self.hpods = ctx.hinf[PODS]
        self.hsecrets = ctx.hinf[SECRETS]
        # Token Secrets written, by name: (virtual pod uid, refresh time, node). The informer
        # may not show a Secret just written; this saves issuing its tokens twice.
        self._issued: dict[str, tuple[str, float, str]] = {}

    def keys(self):
        return {*self.vpods.keys(), *self.recorded_keys()}

    def reconcile(self, key: str) -> float | None:
        vpod = self.vpods.get(key)
        copies = self.host_copies(key)
        if vpod is None:
            self.delete_all(copies)
            namespace, name = key.split("/", 1)
            self._issued.pop(names.token_secret_name(self.ctx.target.name(name, namespace)), None)
            return None
        hpod = self.pick(copies, self.ctx.target.name(vpod["metadata"]["name"], vpod["metadata"]["namespace"]))
        if vpod["metadata"].get("deletionTimestamp"):
            return self._finish_deletion(vpod, hpod)
        if hpod is not None and names.recorded_uid(hpod) != vpod["metadata"]["uid"]:
            self.delete_host(hpod, grace_seconds=0)  # left by an earlier pod of that name
            return None
        if hpod is None:
            if translate.was_scheduled(vpod):
                self._host_pod_lost(vpod)
                return None
            if vpod["spec"].get("schedulingGates"):
                self._report_gated(vpod)
                return None
            hpod = self._create(vpod)
            if hpod is None:
                return None
        hpod, translated, infeasible = self._push_down(vpod, hpod)
        self._report(vpod, hpod, translated, infeasible)
        self._ensure_trust_bundles(vpod, hpod)
        waits = [self._ensure_certificates(vpod, hpod), self._ensure_tokens(vpod, hpod)]
        return min((wait for wait in waits if wait is not None), default=None)

    # Creating ----------------------------------------------------------------
    def _create(self, vpod: dict) -> dict | None:
        namespace = vpod["metadata"]["namespace"]
        try:
            desired = self._desired(vpod, self.ctx.target.name(vpod["metadata"]["name"], namespace))
        except Refused as refusal:
            self.refuse(vpod, str(refusal))
            return None
        refs = translate.pod_refs(vpod)
        missing = self._missing(namespace, refs)
        if missing:
            self.ctx.recorder.warn(vpod, "Pod", "WaitingForReferences",
                                   f"the pod waits for {', '.join(missing)}: not found")
            return None
        for resource, kind, _ in DEPENDENCIES:
            for name in refs.of(kind):
                if self.ctx.vinf[resource].get(f"{namespace}/{name}") is not None:
                    self.ctx.controllers[kind].reconcile(f"{namespace}/{name}")
        return self.create_host(translate.for_create(desired), vpod)

    def refusal(self, vpod: dict) -> str | None:
        """Why the tenant policy refuses this pod (not yet created), None if it does not or
        only asks for what the host does not offer (NotOffered: created, then left Pending
        as Kubernetes leaves such a pod): the translation _create makes, for the pod
        admission webhook (syncer.admission)."""
        meta = vpod["metadata"]
        try:
            self._desired(vpod, self.ctx.target.name(meta.get("name") or meta.get("generateName") or "pod",
                                                     meta["namespace"]))
        except NotOffered:
            return None
        except Refused as refused:
            return str(refused)
        return None

    def _desired(self, vpod: dict, host_name: str) -> dict:
        tokens = translate.token_sources(vpod)
        namespace = vpod["metadata"]["namespace"]
        services = [s for s in self.ctx.vinf[SERVICES].values() if s["metadata"]["namespace"] == namespace
                    and translate.routed_cluster_ip(s, self._service_copies(key_of(s)))]
        bundles, certificates = trustbundles.bundle_sources(vpod), podcertificates.certificate_sources(vpod)
        desired = translate.host_pod(vpod, self._target(), names.token_secret_name(host_name) if tokens else None,
                                     services, names.trust_bundles_name(host_name) if bundles else None,
                                     names.certificates_name(host_name) if certificates else None)
        policies = [p for p in self.ctx.vinf[NETWORKPOLICIES].values() if p["metadata"]["namespace"] == namespace]
        desired["metadata"]["labels"].update(isolation_labels(vpod, policies))
        return desired

    def _target(self) -> Target:
        target = dataclasses.replace(with_offered(self.ctx, with_host_default(self.ctx, self.ctx.target)),
                                     nodes=frozenset(self.ctx.vinf[NODES].keys()))
        if target.dns_ip:  # the config's wins
            return target
        dns_ip = translate.routed_cluster_ip(self.ctx.vinf[SERVICES].get(translate.CLUSTER_DNS),
                                             self._service_copies(translate.CLUSTER_DNS))
        return dataclasses.replace(target, dns_ip=dns_ip) if dns_ip else target

    def _service_copies(self, key: str) -> list[dict]:
        return self.ctx.controllers["Service"].host_copies(key)

    def _missing(self, namespace: str, refs: translate.Refs) -> list[str]:
        missing = []
        for resource, kind, label in DEPENDENCIES:
            for name, required in sorted(refs.of(kind).items()):
                if required and self.ctx.vinf[resource].get(f"{namespace}/{name}") is None:
                    missing.append(f'{label} "{name}"')
        return missing

    # Tokens ------------------------------------------------------------------
    def _ensure_tokens(self, vpod: dict, hpod: dict) -> float | None:
        """Keep the host token Secret filled with fresh tokens from the vcluster, bound to
        the virtual pod. Returns seconds until the next refresh.

        Issued as soon as the host pod exists, so that the kubelet finds the Secret when it
        mounts it (a missing one costs the pod a retry with backoff), and again once the
        pod is bound (`_report` binds it first), so that the tokens name its node: the
        kubelet usually mounts after that, and otherwise refreshes the files at its next sync."""
        sources = translate.token_sources(vpod)
        if not sources:
            return None
        name, node = names.token_secret_name(hpod["metadata"]["name"]), hpod["spec"].get("nodeName") or ""
        issued = [self._issued.get(name, ("", 0, ""))]
        secret = self.hsecrets.get(self.host_namespaced_key(name))
        if secret is not None:
            annotations = secret["metadata"]["annotations"]
            issued.append((names.recorded_uid(secret), float(annotations.get(ANN_REFRESH, 0)),
                           annotations.get(ANN_NODE, "")))
        now = time.time()
        fresh = [at for uid, at, for_node in issued if uid == vpod["metadata"]["uid"] and at > now and for_node == node]
        if fresh:
            return max(fresh) - now
        data, refresh_at = self._issue(vpod, sources)
        body = self._companion(vpod, hpod, names.TOKEN_KIND, name)
        body["metadata"]["annotations"].update({ANN_REFRESH: f"{refresh_at:.0f}", ANN_NODE: node})
        if not self._write_companion(vpod, SECRETS, secret, {**body, "type": "Opaque"}, data):
            return None
        self._issued[name] = (vpod["metadata"]["uid"], refresh_at, node)
        return max(refresh_at - time.time(), 1)

    def _issue(self, vpod: dict, sources: list[translate.TokenSource]) -> tuple[dict, float]:
        meta = vpod["metadata"]
        account = vpod["spec"].get("serviceAccountName") or "default"
        data, refresh_at = {}, float("inf")
        for source in sources:
            spec = {
                "expirationSeconds": source.expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            }
            if source.audience:
                spec["audiences"] = [source.audience]
            response = self.ctx.virtual.create(
                SERVICEACCOUNTS, meta["namespace"], {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                                     "spec": spec},
                name=account, sub="token",
            )
            data[source.key] = base64.b64encode(response["status"]["token"].encode()).decode()
            expires = _timestamp(response["status"]["expirationTimestamp"])
            now = time.time()
            refresh_at = min(refresh_at, now + (expires - now) * REFRESH_AT)
        return data, refresh_at

    # Companions: what a host pod mounts for the kubelet's part (bundles, certificates) --
    def _ensure_trust_bundles(self, vpod: dict, hpod: dict) -> None:
        """Keep the host ConfigMap of the pod's trust bundles what the vcluster's bundles
        say now (a bundle's change requeues the pods projecting it)."""
        sources = trustbundles.bundle_sources(vpod)
        if not sources:
            return
        name = names.trust_bundles_name(hpod["metadata"]["name"])
        data = trustbundles.configmap_data(sources, list(self.ctx.vinf[CLUSTERTRUSTBUNDLES].values()))
        current = self.ctx.hinf[CONFIGMAPS].get(self.host_namespaced_key(name))
        if current is not None and names.recorded_uid(current) == vpod["metadata"]["uid"] \
                and (current.get("data") or {}) == data:
            return
        self._write_companion(vpod, CONFIGMAPS, current, self._companion(vpod, hpod, names.TRUST_BUNDLES_KIND, name),
                              data)

    def _ensure_certificates(self, vpod: dict, hpod: dict) -> float | None:
        """A kubelet's part for the pod's podCertificate projections, against the vcluster:
        ask its signer, keep the new key while the request is pending, store key and chain
        once issued, ask again from the certificate's beginRefreshAt. Returns seconds until
        then. Asked once the pod is bound: a request names the pod's node."""
        sources = podcertificates.certificate_sources(vpod)
        node = hpod["spec"].get("nodeName")
        if not sources or not node:
            return None
        name = names.certificates_name(hpod["metadata"]["name"])
        # Read, not from the informer: a copy lagging behind our last write would ask twice.
        current = self.ctx.host.get_or_none(SECRETS, self.ctx.target.namespace, name)
        mine = current is not None and names.recorded_uid(current) == vpod["metadata"]["uid"]
        data = dict(current.get("data") or {}) if mine else {}
        recorded = {k: v for k, v in ((current or {}).get("metadata", {}).get("annotations") or {}).items()
                    if k.startswith((ANN_REQUEST, ANN_RENEW, ANN_REFUSED))}
        before = recorded if mine else {}  # an earlier pod's of that name: start afresh
        state = dict(before)
        for source in sources:
            self._advance_certificate(vpod, node, source, data, state)
        if not mine or state != before:
            body = self._companion(vpod, hpod, names.CERTIFICATES_KIND, name)
            body["metadata"]["annotations"].update({**{k: None for k in recorded if k not in state}, **state})
            if not self._write_companion(vpod, SECRETS, current, {**body, "type": "Opaque"}, data):
                return None
        renewals = [float(at) - time.time() for key, at in state.items() if key.startswith(ANN_RENEW)]
        return max(min(renewals), 1) if renewals else None

    def _advance_certificate(self, vpod: dict, node: str, source: podcertificates.CertificateSource, data: dict,
                             state: dict) -> None:
        namespace = vpod["metadata"]["namespace"]
        pending, pending_key = state.get(ANN_REQUEST + source.key), f"{source.key}-pending"
        if pending:
            request = self.ctx.virtual.get_or_none(PODCERTIFICATEREQUESTS, namespace, pending)
            answer = podcertificates.outcome(request) if request else None
            if request is not None and answer is None:
                return  # the signer has not answered: its answer requeues the pod
            state.pop(ANN_REQUEST + source.key)
            key_pem = base64.b64decode(data.pop(pending_key, ""))
            if answer and answer[0] == podcertificates.ISSUED:
                data.update(podcertificates.files(source, key_pem, answer[1]))
                state[ANN_RENEW + source.key] = f"{_timestamp(request['status']['beginRefreshAt']):.0f}"
                return
            if answer:
                state[ANN_REFUSED + source.key] = answer[1][:256]
                self.ctx.recorder.warn(vpod, "Pod", answer[0],
                                       f"PodCertificateRequest {namespace}/{pending} {answer[0].lower()}: {answer[1]}")
                return
            # Deleted before it was answered: ask again.
        renew_at = state.get(ANN_RENEW + source.key)
        if ANN_REFUSED + source.key in state or (renew_at and float(renew_at) > time.time()):
            return
        key_pem, stub = podcertificates.new_key(source.projection["keyType"])
        account = self.ctx.virtual.get(SERVICEACCOUNTS, namespace, vpod["spec"].get("serviceAccountName") or "default")
        request = self.ctx.virtual.create(PODCERTIFICATEREQUESTS, namespace, podcertificates.request_body(
            vpod, source, stub, account["metadata"]["uid"], self.ctx.virtual.get(NODES, None, node)))
        data[pending_key] = base64.b64encode(key_pem).decode()
        state[ANN_REQUEST + source.key] = request["metadata"]["name"]

    def _companion(self, vpod: dict, hpod: dict, recorded_kind: str, name: str) -> dict:
        """A host object holding what the host pod mounts for the virtual pod, gone with it."""
        labels, annotations = names.marks(self.ctx.vcluster, recorded_kind, vpod)
        owner = {"apiVersion": "v1", "kind": "Pod", "name": hpod["metadata"]["name"], "uid": hpod["metadata"]["uid"]}
        return {"apiVersion": "v1", "metadata": {"name": name, "namespace": self.ctx.target.namespace,
                                                 "labels": labels, "annotations": annotations,
                                                 "ownerReferences": [owner]}}

    def _write_companion(self, vpod: dict, resource: Resource, current: dict | None, body: dict, data: dict) -> bool:
        """Create or update a companion to hold exactly `data`; False (and an Event) if its
        name is another's."""
        name = body["metadata"]["name"]
        body = {**body, "kind": resource.kind}
        if current is None:
            try:
                self.ctx.host.create(resource, self.ctx.target.namespace, {**body, "data": data})
                return True
            except ApiError as exc:
                if not exc.conflict:
                    raise
            # Written meanwhile, or the previous pod's, not yet collected.
            current = self.ctx.host.get_or_none(resource, self.ctx.target.namespace, name)
        if current is not None and not names.is_ours(current, self.ctx.vcluster):  # ours to update only if marked
            self.ctx.recorder.warn(vpod, "Pod", "NameTaken", f"host {resource.kind} {name} is not managed by this vcluster")
            return False
        gone = {key: None for key in (current or {}).get("data") or {} if key not in data}  # merge patch: removed
        self.ctx.host.patch(resource, self.ctx.target.namespace, name, {**body, "data": {**gone, **data}})
        return True

    # Running -----------------------------------------------------------------
    def _push_down(self, vpod: dict, hpod: dict) -> tuple[dict, bool, str | None]:
        """The host pod once what may change on a running pod is pushed down; whether the
        virtual spec could be translated at all; and why the host refused a resize, if it
        did (its quota or limit ranges: the tenant reads it as the kubelet's Infeasible)."""
        try:
            desired = self._desired(vpod, hpod["metadata"]["name"])
        except Refused:  # allowed when it started, by a policy since narrowed: leave it running
            return hpod, False, None
        infeasible = None
        for sub, patch in ((None, translate.pod_patch(desired, hpod)),
                           ("resize", translate.resize_patch(desired, hpod)),
                           ("ephemeralcontainers", translate.ephemeral_containers_patch(desired, hpod))):
            if not patch:
                continue
            try:
                hpod = self.ctx.host.patch(PODS, self.ctx.target.namespace, hpod["metadata"]["name"], patch,
                                           strategic=True, sub=sub)
            except ApiError as exc:  # the host's Pod Security or quota, most likely: the tenant reads why
                if sub is None or exc.status not in REFUSALS:
                    raise
                self.refuse(vpod, exc.message)
                infeasible = exc.message if sub == "resize" else infeasible
        return hpod, True, infeasible

    def _report(self, vpod: dict, hpod: dict, translated: bool, infeasible: str | None) -> None:
        meta = vpod["metadata"]
        node = hpod["spec"].get("nodeName")
        if node and not vpod["spec"].get("nodeName"):
            self.ctx.controllers["Node"].ensure(node)
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            self.ctx.virtual.create(PODS, meta["namespace"], binding, name=meta["name"], sub="binding")
        offset = vpod["metadata"].get("generation", 1) - hpod["metadata"].get("generation", 1) if translated else None
        status = translate.with_virtual_resources(hpod.get("status") or {}, vpod["spec"])
        if infeasible:
            status = translate.with_infeasible_resize(status, vpod.get("status") or {}, infeasible)
        patch = translate.pod_status_patch(status, vpod.get("status") or {}, offset)
        if patch:
            self.ctx.virtual.patch(PODS, meta["namespace"], meta["name"], {"status": patch}, sub="status")

    def _report_gated(self, vpod: dict) -> None:
        """What a scheduler says of a pod with scheduling gates: it waits for them to go
        (the host pod is made then, so the host never holds a pod nobody may schedule)."""
        meta = vpod["metadata"]
        patch = translate.gated_status_patch(vpod.get("status") or {})
        if patch:
            self.ctx.virtual.patch(PODS, meta["namespace"], meta["name"], {"status": patch}, sub="status")

    # Ending ------------------------------------------------------------------
    def _finish_deletion(self, vpod: dict, hpod: dict | None) -> None:
        meta = vpod["metadata"]
        if hpod is None:
            self.ctx.virtual.delete(PODS, meta["namespace"], meta["name"], grace_seconds=0, uid=meta["uid"])
        elif not hpod["metadata"].get("deletionTimestamp"):
            self.delete_host(hpod, grace_seconds=meta.get("deletionGracePeriodSeconds"))
        return None

    def _host_pod_lost(self, vpod: dict) -> None:
        meta = vpod["metadata"]
        logger.info("host pod of %s/%s is gone; deleting the virtual pod", meta["namespace"], meta["name"])
        self.ctx.virtual.delete(PODS, meta["namespace"], meta["name"], grace_seconds=0, uid=meta["uid"])


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
