"""Ingresses and IngressClasses (syncer/kinds/ingresses.py, ingressclasses.py): what of a
tenant's Ingress reaches the host, which host names it may claim, and that a second
vcluster cannot take a name another holds.

These run on kwok, without an ingress controller: they show the host objects and the
claims. Where a status address is checked, the test writes it as the host's controller
would; tests/syncer/test_ingress_traffic.py fetches pages through a real controller.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from syncer import names
from syncer.kinds.ingresses import CLAIMS_NAMESPACE, LABEL_HOLDER
from syncer.policy import TenantPolicy
from tests.kube.helpers import eventually
from tests.syncer.test_tenant_policy import refusals, refused

DOMAIN = "team-a.apps.vcportal.test"
POLICY = {"ingress_hosts": [f"*.{DOMAIN}"]}


def ingress(name: str, *hosts: str, tls: list[dict] | None = None, **spec) -> dict:
    rules = [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}
             for h in hosts]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": {
                "nginx.ingress.kubernetes.io/server-snippet": "location / { proxy_pass http://kubernetes.default; }"}},
            "spec": {"rules": rules, **({"tls": tls} if tls else {}), **spec}}


def host_ingresses(vc) -> dict:
    items = client.NetworkingV1Api(vc.operator.api).list_namespaced_ingress(
        vc.host_namespace, label_selector=f"{names.LABEL_MANAGED_BY}={vc.name}").items
    return {i.metadata.annotations[names.ANN_NAME]: i for i in items}


def claims(operator) -> dict[str, str]:
    leases = client.CoordinationV1Api(operator.api).list_namespaced_lease(CLAIMS_NAMESPACE).items
    return {lease.metadata.name: lease.spec.holder_identity for lease in leases}


def test_the_policy_gives_each_team_the_names_under_its_own_domain():
    policy = TenantPolicy.from_dict({"ingress_hosts": ["*.{team}.apps.example.com", "www.example.com"]})
    team_a = policy.for_team("team-a")
    assert team_a.ingress_hosts == ("*.team-a.apps.example.com", "www.example.com")
    assert team_a.allows_host("shop.team-a.apps.example.com")
    assert team_a.allows_host("api.shop.team-a.apps.example.com")
    assert team_a.allows_host("www.example.com")
    for other in ("team-a.apps.example.com", "shop.team-b.apps.example.com", "shop.xteam-a.apps.example.com",
                  "shop.team-a.apps.example.com.evil.net", "api.www.example.com"):
        assert not team_a.allows_host(other), other
    assert not TenantPolicy().allows_host("shop.team-a.apps.example.com"), "the empty policy allows no name"


@pytest.mark.kube
def test_an_ingress_reaches_the_host_with_its_hosts_services_and_tls_only(make_vcluster):
    vc = make_vcluster("ing", policy=POLICY)
    tenant = client.NetworkingV1Api(vc.tenant.api)
    secret = {"metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": base64.b64encode(b"cert").decode(), "tls.key": base64.b64encode(b"key").decode()}}
    vc.tenant.core.create_namespaced_secret("default", secret)
    host = f"shop.{DOMAIN}"
    tenant.create_namespaced_ingress("default", ingress("shop", host, tls=[{"hosts": [host], "secretName": "web-tls"}]))

    copy = eventually(lambda: host_ingresses(vc).get("shop"), what="the host copy")
    rule = copy.spec.rules[0]
    assert rule.host == host
    assert rule.http.paths[0].backend.service.name == vc.host_name("web")
    assert copy.spec.tls[0].secret_name == vc.host_name("web-tls") and copy.spec.tls[0].hosts == [host]
    assert copy.spec.ingress_class_name is None, "the host's default class"
    assert not [k for k in copy.metadata.annotations if not k.startswith(names.PREFIX)], "no tenant annotation"
    synced = eventually(lambda: vc.operator.core.read_namespaced_secret(vc.host_name("web-tls"), vc.host_namespace),
                        what="the TLS Secret on the host")
    assert synced.type == "kubernetes.io/tls" and synced.data == secret["data"]
    lease = client.CoordinationV1Api(vc.operator.api).read_namespaced_lease(host, CLAIMS_NAMESPACE)
    assert (lease.spec.holder_identity, lease.metadata.labels) == (vc.host_namespace, {LABEL_HOLDER: vc.host_namespace})

    # The host's controller publishes an address; the tenant sees it.
    client.NetworkingV1Api(vc.operator.api).patch_namespaced_ingress_status(
        copy.metadata.name, vc.host_namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}})
    eventually(lambda: (tenant.read_namespaced_ingress("shop", "default").status.load_balancer.ingress or [None])[0]
               and tenant.read_namespaced_ingress("shop", "default").status.load_balancer.ingress[0].ip == "192.0.2.7",
               what="the address on the virtual Ingress")

    tenant.delete_namespaced_ingress("shop", "default")
    eventually(lambda: "shop" not in host_ingresses(vc), what="the host copy gone")
    eventually(lambda: host not in claims(vc.operator), what="the host name released")
    eventually(lambda: not [s for s in vc.host_objects()["secrets"] if s.metadata.name == vc.host_name("web-tls")],
               what="the TLS Secret gone from the host with its last Ingress")


ESCAPES = {
    "outside": (ingress("outside", "portal.apps.vcportal.test"), ("portal.apps.vcportal.test", "allowed")),
    "neighbour": (ingress("neighbour", "shop.team-b.apps.vcportal.test"), ("team-b",)),
    "suffix": (ingress("suffix", f"evil{DOMAIN}"), (f"evil{DOMAIN}",)),
    "hostless": (ingress("hostless", ""), ("without a host",)),
    "wildcard": (ingress("wildcard", f"*.{DOMAIN}"), ("wildcard",)),
    "catch-all": (ingress("catch-all", f"a.{DOMAIN}", defaultBackend={
        "service": {"name": "web", "port": {"number": 80}}}), ("default backend",)),
    "resource": ({**ingress("resource"), "spec": {"rules": [{"host": f"r.{DOMAIN}", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"resource": {
            "kind": "Secret", "name": "vcportal-portal"}}}]}}]}}, ("resource backend",)),
    "tls-outside": (ingress("tls-outside", f"t.{DOMAIN}", tls=[{"hosts": ["bank.example.com"], "secretName": "x"}]),
                    ("bank.example.com",)),
    "class": (ingress("class", f"c.{DOMAIN}", ingressClassName="internal-admin"), ("IngressClass internal-admin",)),
}


@pytest.mark.kube
def test_every_field_that_could_reach_beyond_the_teams_names_is_refused(make_vcluster):
    vc = make_vcluster("ing-escape", policy=POLICY)
    tenant = client.NetworkingV1Api(vc.tenant.api)
    for body, _ in ESCAPES.values():
        tenant.create_namespaced_ingress("default", body)
    for name, (_, words) in ESCAPES.items():
        refused(vc, name, *words)
    assert host_ingresses(vc) == {}
    assert not [h for h, holder in claims(vc.operator).items() if holder == vc.host_namespace]


@pytest.mark.kube
def test_without_ingress_hosts_in_the_policy_no_ingress_is_synced(make_vcluster):
    vc = make_vcluster("ing-none")
    client.NetworkingV1Api(vc.tenant.api).create_namespaced_ingress("default", ingress("shop", f"shop.{DOMAIN}"))
    refused(vc, "shop", "allowed: none")
    assert host_ingresses(vc) == {}


@pytest.mark.kube
def test_a_host_name_is_held_by_one_vcluster_until_it_lets_go(make_vcluster):
    first = make_vcluster("ing-first", policy=POLICY)
    second = make_vcluster("ing-second", policy=POLICY, resync_period=2)
    host = f"popular-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    client.NetworkingV1Api(first.tenant.api).create_namespaced_ingress("default", ingress("site", host))
    eventually(lambda: "site" in host_ingresses(first), what="the first vcluster's copy")

    second_api = client.NetworkingV1Api(second.tenant.api)
    second_api.create_namespaced_ingress("default", ingress("site", host))
    refused(second, "site", host, "taken by another vcluster")
    assert host_ingresses(second) == {}
    assert claims(first.operator)[host] == first.host_namespace

    # Another Ingress of the first vcluster may share the name (another path, say).
    client.NetworkingV1Api(first.tenant.api).create_namespaced_ingress("default", ingress("site-api", host))
    eventually(lambda: "site-api" in host_ingresses(first), what="a second Ingress of the holder")
    client.NetworkingV1Api(first.tenant.api).delete_namespaced_ingress("site", "default")
    eventually(lambda: "site" not in host_ingresses(first), what="one of the holder's copies gone")
    assert claims(first.operator)[host] == first.host_namespace, "still named by the holder's other Ingress"

    client.NetworkingV1Api(first.tenant.api).delete_namespaced_ingress("site-api", "default")
    eventually(lambda: "site" in host_ingresses(second), what="the second vcluster's copy once the name is free")
    assert claims(first.operator)[host] == second.host_namespace


@pytest.mark.kube
def test_the_host_classes_offered_are_mirrored_and_others_refused(make_vcluster, operator):
    tag = uuid.uuid4().hex[:6]
    default, listed, hidden = f"default-{tag}", f"public-{tag}", f"admin-{tag}"
    host = client.NetworkingV1Api(operator.api)

    def ingress_class(name: str, **annotations) -> dict:
        return {"metadata": {"name": name, "annotations": annotations},
                "spec": {"controller": "example.com/ingress", "parameters": {
                    "apiGroup": "example.com", "kind": "Config", "name": "secret-settings"}}}

    host.create_ingress_class(ingress_class(default, **{"ingressclass.kubernetes.io/is-default-class": "true"}))
    host.create_ingress_class(ingress_class(listed))
    host.create_ingress_class(ingress_class(hidden))
    try:
        vc = make_vcluster("ing-classes", policy={**POLICY, "ingress_classes": [listed]})
        tenant = client.NetworkingV1Api(vc.tenant.api)

        def mirrors() -> dict:
            return {c.metadata.name: c for c in tenant.list_ingress_class().items
                    if (c.metadata.labels or {}).get(names.LABEL_MANAGED_BY) == vc.name}

        shown = eventually(lambda: (m := mirrors()) and {default, listed} <= set(m) and m, what="the offered classes")
        assert hidden not in shown
        assert shown[default].metadata.annotations["ingressclass.kubernetes.io/is-default-class"] == "true"
        assert shown[listed].metadata.annotations["ingressclass.kubernetes.io/is-default-class"] == "false"
        assert shown[listed].spec.controller == "example.com/ingress" and shown[listed].spec.parameters is None

        tenant.create_namespaced_ingress("default", ingress("listed", f"l.{DOMAIN}", ingressClassName=listed))
        tenant.create_namespaced_ingress("default", ingress("hidden", f"h.{DOMAIN}", ingressClassName=hidden))
        copy = eventually(lambda: host_ingresses(vc).get("listed"), what="the Ingress of an offered class")
        assert copy.spec.ingress_class_name == listed
        refused(vc, "hidden", f"IngressClass {hidden}")
        assert not refusals(vc, "listed")
    finally:
        for name in (default, listed, hidden):
            host.delete_ingress_class(name)


@pytest.mark.kube
def test_a_syncer_cannot_take_or_release_another_vclusters_claim(make_vcluster):
    """RBAC lets every syncer write Leases in the claims namespace; the host's admission
    policy (provisioning.manifests.claims_setup) lets it write only its own vcluster's."""
    holder = make_vcluster("ing-holder", policy=POLICY)
    other = make_vcluster("ing-other", policy=POLICY)
    host = f"held.{DOMAIN}"
    client.NetworkingV1Api(holder.tenant.api).create_namespaced_ingress("default", ingress("held", host))
    eventually(lambda: host in claims(holder.operator), what="the holder's claim")

    other_syncer = config.new_client_from_config(str(other.config_path.parent / "host.kubeconfig"))
    as_other = client.CoordinationV1Api(other_syncer)
    squat = {"metadata": {"name": f"squat.{DOMAIN}", "labels": {LABEL_HOLDER: holder.host_namespace}},
             "spec": {"holderIdentity": holder.host_namespace}}
    for attempt in (lambda: as_other.delete_namespaced_lease(host, CLAIMS_NAMESPACE),  # RBAC allows deletes
                    lambda: as_other.create_namespaced_lease(CLAIMS_NAMESPACE, squat)):
        with pytest.raises(ApiException) as refused_write:
            attempt()
        assert refused_write.value.status == 403 and "only for its own vcluster" in refused_write.value.body
    with pytest.raises(ApiException) as refused_patch:  # no RBAC for it
        as_other.patch_namespaced_lease(host, CLAIMS_NAMESPACE, {"spec": {"holderIdentity": other.host_namespace}})
    assert refused_patch.value.status == 403
    assert claims(holder.operator)[host] == holder.host_namespace
    assert f"squat.{DOMAIN}" not in claims(holder.operator)
