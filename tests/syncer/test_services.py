"""Services: the host copy routes to the tenant's host pods, with one ClusterIP for both."""

from __future__ import annotations

import ssl

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer import admission, names
from tests.kube.helpers import eventually, new_namespace

from .test_configs import pod_using
from .test_metrics import call_syncer, kubectl
from .test_pods import deployment


def service(name: str, selector: dict | None = None, cluster_ip: str | None = None) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(selector=selector, cluster_ip=cluster_ip,
                                  ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )


def endpoint_ips(endpoints: client.V1Endpoints) -> set[str]:
    return {a.ip for s in endpoints.subsets or [] for a in s.addresses or []}


def test_a_service_selects_the_host_pods_and_lists_their_ips_on_both_sides(vcluster):
    tenant, operator = vcluster.tenant.core, vcluster.operator.core
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("web", 2))
    tenant.create_namespaced_service("default", service("web", {"app": "web"}))
    host_name = vcluster.host_name("web")

    host_ips = eventually(lambda: len(ips := {p.status.pod_ip for p in vcluster.host_pods() if p.status.pod_ip}) == 2
                          and ips, what="2 host pods with IPs")
    eventually(lambda: endpoint_ips(operator.read_namespaced_endpoints(host_name, vcluster.host_namespace)) == host_ips,
               what="the host service's endpoints listing the host pods")
    eventually(lambda: endpoint_ips(tenant.read_namespaced_endpoints("web", "default")) == host_ips,
               what="the virtual service's endpoints listing the same IPs")

    host = operator.read_namespaced_service(host_name, vcluster.host_namespace)
    assert host.spec.selector == {"app": "web", names.LABEL_MANAGED_BY: vcluster.name,
                                  names.LABEL_NAMESPACE: "default"}
    virtual = tenant.read_namespaced_service("web", "default")
    assert virtual.spec.cluster_ip == host.spec.cluster_ip


def test_a_service_without_selector_gets_the_tenants_endpoints_on_the_host(vcluster):
    tenant, operator = vcluster.tenant.core, vcluster.operator.core
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("backend", 2))
    ips = eventually(lambda: len(ips := [p.status.pod_ip for p in tenant.list_namespaced_pod("default").items
                                         if p.status.pod_ip]) == 2 and ips, what="2 pod IPs")
    tenant.create_namespaced_service("default", service("external"))
    host_name = vcluster.host_name("external")
    eventually(lambda: tenant.read_namespaced_service("external", "default").spec.cluster_ip ==
               operator.read_namespaced_service(host_name, vcluster.host_namespace).spec.cluster_ip,
               what="the service with the host's ClusterIP")
    tenant.create_namespaced_endpoints("default", client.V1Endpoints(
        metadata=client.V1ObjectMeta(name="external"),
        subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip=ips[0])],
                                         ports=[client.CoreV1EndpointPort(port=8080)])]))

    eventually(lambda: endpoint_ips(operator.read_namespaced_endpoints(host_name, vcluster.host_namespace))
               == {ips[0]}, what="the endpoints on the host")

    tenant.patch_namespaced_endpoints("external", "default", {"subsets": [
        {"addresses": [{"ip": ips[1]}], "ports": [{"port": 8080}]}]})
    eventually(lambda: endpoint_ips(operator.read_namespaced_endpoints(host_name, vcluster.host_namespace))
               == {ips[1]}, what="the changed endpoints on the host")

    tenant.delete_namespaced_service("external", "default")
    eventually(lambda: not vcluster.host_objects()["endpoints"] and not vcluster.host_objects()["services"],
               what="service and endpoints gone from the host")


def test_a_services_hand_written_endpoint_slices_reach_the_host_with_its_own_pods_only(vcluster, operator):
    """EndpointSlices the tenant writes (two, with different ports) become the host
    Endpoints' subsets; an address that is not one of the vcluster's pods (here the host
    API server's Service address) is dropped, with an event."""
    tenant = vcluster.tenant.core
    vcluster.tenant.apps.create_namespaced_deployment("default", deployment("backend", 2))
    ips = eventually(lambda: len(ips := sorted(p.status.pod_ip for p in tenant.list_namespaced_pod("default").items
                                               if p.status.pod_ip)) == 2 and ips, what="2 pod IPs")
    tenant.create_namespaced_service("default", service("sliced"))
    discovery = client.DiscoveryV1Api(vcluster.tenant.api)
    host_api = operator.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    for name, port, addresses in (("sliced-a", 8080, [ips[0]]), ("sliced-b", 9090, [ips[1], host_api])):
        discovery.create_namespaced_endpoint_slice("default", client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(name=name, labels={"kubernetes.io/service-name": "sliced"}),
            address_type="IPv4", ports=[client.DiscoveryV1EndpointPort(name=name, port=port)],
            endpoints=[client.V1Endpoint(addresses=[ip]) for ip in addresses]))

    def host_subsets():
        endpoints = operator.core.read_namespaced_endpoints(vcluster.host_name("sliced"), vcluster.host_namespace)
        return {(a.ip, p.port) for s in endpoints.subsets or [] for a in s.addresses or [] for p in s.ports}

    eventually(lambda: host_subsets() == {(ips[0], 8080), (ips[1], 9090)}, what="both slices on the host")
    events = tenant.list_namespaced_event("default", field_selector="reason=HostRefused").items
    assert any(host_api in e.message for e in events)

    discovery.delete_namespaced_endpoint_slice("sliced-b", "default")
    eventually(lambda: host_subsets() == {(ips[0], 8080)}, what="the deleted slice gone from the host")


def test_a_new_service_has_the_hosts_cluster_ip_from_its_creation(vcluster):
    """The webhook (syncer.admission): the create's answer already holds the address
    that routes, and the Service is never recreated (same uid)."""
    created = vcluster.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))

    host = vcluster.operator.core.read_namespaced_service(vcluster.host_name("web"), vcluster.host_namespace)
    assert created.spec.cluster_ip == host.spec.cluster_ip
    claimed = eventually(lambda: vcluster.operator.core.read_namespaced_service(
        vcluster.host_name("web"), vcluster.host_namespace).metadata.annotations[names.ANN_UID],
        what="the host copy claimed by the controller")
    assert claimed == created.metadata.uid
    assert vcluster.tenant.core.read_namespaced_service("web", "default").metadata.uid == created.metadata.uid


def test_an_external_name_service_turned_cluster_ip_has_the_hosts_ip_from_that_update(vcluster, operator):
    """ExternalName Services are refused on this host (no copy); the update that gives one
    a ClusterIP gets the host's from the webhook, as a create does (a conformance test
    reaches the address the update answered with). An address the tenant names in that
    update, here one the host gave another namespace, is never asked of the host."""
    external = client.V1Service(metadata=client.V1ObjectMeta(name="ext"), spec=client.V1ServiceSpec(
        type="ExternalName", external_name="example.com", selector={"app": "web"}))
    created = vcluster.tenant.core.create_namespaced_service("default", external)
    eventually(lambda: [e for e in vcluster.tenant.core.list_namespaced_event("default").items
                        if e.reason == "HostRefused" and e.involved_object.name == "ext"], what="the refusal")

    other = new_namespace(operator.core, "ip-holder")
    try:
        taken = operator.core.create_namespaced_service(other, service("holder", {"app": "x"})).spec.cluster_ip
        turned = vcluster.tenant.core.patch_namespaced_service("ext", "default", {"spec": {
            "type": "ClusterIP", "externalName": None, "clusterIP": taken, "ports": [{"port": 80, "targetPort": 8080}]}})
    finally:
        operator.core.delete_namespace(other)

    host = vcluster.operator.core.read_namespaced_service(vcluster.host_name("ext"), vcluster.host_namespace)
    assert turned.spec.cluster_ip == host.spec.cluster_ip != taken and host.spec.type == "ClusterIP"
    claimed = eventually(lambda: vcluster.operator.core.read_namespaced_service(
        vcluster.host_name("ext"), vcluster.host_namespace).metadata.annotations[names.ANN_UID],
        what="the host copy claimed by the controller")
    assert claimed == created.metadata.uid
    assert vcluster.tenant.core.read_namespaced_service("ext", "default").metadata.uid == created.metadata.uid


def test_a_service_the_webhook_cannot_name_is_recreated_with_the_hosts_ip(vcluster):
    """A generated name is not known at admission: the controller recreates the Service."""
    generated = client.V1Service(metadata=client.V1ObjectMeta(generate_name="web-"),
                                 spec=client.V1ServiceSpec(selector={"app": "web"},
                                                           ports=[client.V1ServicePort(port=80)]))
    created = vcluster.tenant.core.create_namespaced_service("default", generated)
    name = created.metadata.name

    def aligned():
        virtual = vcluster.tenant.core.read_namespaced_service(name, "default")
        host = vcluster.operator.core.read_namespaced_service(vcluster.host_name(name), vcluster.host_namespace)
        return virtual.spec.cluster_ip == host.spec.cluster_ip and (virtual, host)

    virtual, host = eventually(aligned, what="the virtual service with the host's ClusterIP")
    assert virtual.metadata.uid != created.metadata.uid
    assert host.metadata.annotations[names.ANN_UID] == virtual.metadata.uid


def test_a_cluster_ip_the_tenant_chooses_is_never_asked_of_the_host(vcluster, operator, tmp_path):
    """An address the host gave another namespace: the host allocates its own, the
    Service gets it at creation, and kubectl shows a warning saying so."""
    other = new_namespace(operator.core, "ip-holder")
    try:
        taken = operator.core.create_namespaced_service(other, service("holder", {"app": "x"})).spec.cluster_ip
        manifest = tmp_path / "web.yaml"
        manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service", **client.ApiClient()
                                            .sanitize_for_serialization(service("web", {"app": "web"}, taken))}))

        created = kubectl(vcluster, "create", "-n", "default", "-f", str(manifest), "-o", "yaml")

        assert created.returncode == 0, created.stderr
        assert f"not {taken}" in created.stderr and "Warning" in created.stderr
        virtual = yaml.safe_load(created.stdout)
        host = operator.core.read_namespaced_service(vcluster.host_name("web"), vcluster.host_namespace)
        assert virtual["spec"]["clusterIP"] == host.spec.cluster_ip != taken
    finally:
        operator.core.delete_namespace(other)


def test_only_the_vclusters_api_server_may_call_the_webhook(vcluster):
    """A forged review straight to the syncer, with a client certificate from the
    vcluster's CA (which a tenant can get) or none, is refused before it is read; with
    the API server's front-proxy certificate the same review is answered."""
    address = yaml.safe_load(vcluster.config_path.read_text())["metrics_address"]
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "forged", "kind": {"group": "", "version": "v1", "kind": "Service"}, "operation": "CREATE",
        "namespace": "default", "object": client.ApiClient().sanitize_for_serialization(service("forged"))}}
    for cert in ("admin", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            call_syncer(address, vcluster.cluster.pki_dir, cert, "POST", admission.PATH, review)
    assert not vcluster.host_objects()["services"]
    # The same review with the API server's certificate is answered: only the certificate closed it.
    assert call_syncer(address, vcluster.cluster.pki_dir, "front-proxy-client", "POST", admission.PATH, review) == 200


def test_a_dry_run_or_a_refused_create_leaves_nothing_on_the_host(vcluster):
    """A dry run never reaches the host; a create refused after the webhook made the host
    copy (here by the vcluster's own quota) leaves it only for ADMITTED_GRACE."""
    dry = kubectl(vcluster, "create", "service", "clusterip", "dry", "--tcp=80:8080", "--dry-run=server")
    assert dry.returncode == 0, dry.stderr
    vcluster.tenant.core.create_namespaced_resource_quota("default", client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-services"), spec=client.V1ResourceQuotaSpec(hard={"services": "0"})))
    eventually(lambda: vcluster.tenant.core.read_namespaced_resource_quota("no-services", "default").status.hard,
               what="the quota in force")

    with pytest.raises(ApiException, match="exceeded quota"):
        vcluster.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))

    assert [s.metadata.name for s in vcluster.host_objects()["services"]] == [vcluster.host_name("web")]
    eventually(lambda: not vcluster.host_objects()["services"], timeout=90, what="the orphaned host copy deleted")


def test_a_deleted_virtual_service_is_deleted_on_the_host(vcluster):
    vcluster.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))
    eventually(lambda: vcluster.host_objects()["services"], what="the host service")

    def aligned():
        # Until then the syncer may be recreating it with the host's ClusterIP, and a
        # delete in between finds nothing (404): wait for the Service the tenant keeps.
        virtual = vcluster.tenant.core.read_namespaced_service("web", "default")
        host = vcluster.operator.core.read_namespaced_service(vcluster.host_name("web"), vcluster.host_namespace)
        return virtual.spec.cluster_ip == host.spec.cluster_ip

    eventually(aligned, what="the virtual service with the host's ClusterIP")

    vcluster.tenant.core.delete_namespaced_service("web", "default")

    eventually(lambda: not vcluster.host_objects()["services"], what="the host service gone")
    with pytest.raises(ApiException):
        vcluster.operator.core.read_namespaced_service(vcluster.host_name("web"), vcluster.host_namespace)


def test_a_service_the_host_refuses_gets_an_event_saying_why(vcluster, operator):
    operator.core.create_namespaced_resource_quota(vcluster.host_namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-node-ports"),
        spec=client.V1ResourceQuotaSpec(hard={"services.nodeports": "0"})))
    eventually(lambda: operator.core.read_namespaced_resource_quota("no-node-ports", vcluster.host_namespace)
               .status.hard, what="the quota in force")
    exposed = service("exposed", {"app": "web"})
    exposed.spec.type = "NodePort"

    vcluster.tenant.core.create_namespaced_service("default", exposed)

    def refusal():
        events = vcluster.tenant.core.list_namespaced_event("default", field_selector="involvedObject.name=exposed")
        return [e for e in events.items if e.reason == "HostRefused"]

    event = eventually(refusal, what="an event on the refused service")[0]
    assert event.type == "Warning" and "exceeded quota" in event.message
    assert event.involved_object.kind == "Service"
    assert not vcluster.host_objects()["services"]


def test_pods_resolve_through_the_vclusters_dns_once_its_service_routes_without_a_restart(vcluster):
    """No dns_ip in the config: the syncer points host pods at kube-system/kube-dns once
    the host copy has its ClusterIP; pods created before keep the host's resolver."""
    tenant = vcluster.tenant.core
    assert "dns_ip" not in vcluster.config_path.read_text()
    syncer_pid = vcluster.syncer.pid
    tenant.create_namespaced_pod("default", pod_using("before"))
    before = eventually(lambda: [p for p in vcluster.host_pods() if p.metadata.name == vcluster.host_name("before")],
                        what="the host pod of a pod created before the vcluster's DNS")[0]
    assert before.spec.dns_policy == "ClusterFirst" and before.spec.dns_config is None

    dns = service("kube-dns", {"k8s-app": "kube-dns"})
    dns.spec.ports = [client.V1ServicePort(name="dns", port=53, protocol="UDP", target_port=53)]
    tenant.create_namespaced_service("kube-system", dns)
    host_copy = vcluster.host_name("kube-dns", "kube-system")
    host_ip = eventually(lambda: vcluster.operator.core.read_namespaced_service(
        host_copy, vcluster.host_namespace).spec.cluster_ip, what="the host copy of kube-dns")
    eventually(lambda: tenant.read_namespaced_service("kube-dns", "kube-system").spec.cluster_ip == host_ip,
               what="the virtual kube-dns recreated with the host's ClusterIP")

    tenant.create_namespaced_pod("default", pod_using("after"))
    after = eventually(lambda: [p for p in vcluster.host_pods() if p.metadata.name == vcluster.host_name("after")],
                       what="the host pod of a pod created after")[0]
    assert after.spec.dns_policy == "None"
    assert after.spec.dns_config.nameservers == [host_ip]
    assert after.spec.dns_config.searches[0] == "default.svc.cluster.local"
    assert vcluster.syncer.pid == syncer_pid and vcluster.syncer.proc.poll() is None


def test_the_kubernetes_service_lists_where_the_vclusters_pods_reach_its_api_server(make_vcluster):
    vcluster = make_vcluster("apiep", api_endpoint="10.98.1.2:443", resync_period=1)
    tenant = vcluster.tenant.core
    discovery = client.DiscoveryV1Api(tenant.api_client)

    def listed() -> tuple:
        endpoints = tenant.read_namespaced_endpoints("kubernetes", "default")
        endpoint_slice = discovery.read_namespaced_endpoint_slice("kubernetes", "default")
        return (endpoint_ips(endpoints), [p.port for s in endpoints.subsets for p in s.ports],
                [a for e in endpoint_slice.endpoints for a in e.addresses], [p.port for p in endpoint_slice.ports])

    expected = ({"10.98.1.2"}, [443], ["10.98.1.2"], [443])
    eventually(lambda: listed() == expected, what="the kubernetes Service's endpoints")
    tenant.delete_namespaced_endpoints("kubernetes", "default")
    discovery.delete_namespaced_endpoint_slice("kubernetes", "default")
    eventually(lambda: listed() == expected, what="the endpoints written again at the next resync")
    assert [s.metadata.name for s in discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items] == ["kubernetes"]
    assert not vcluster.host_objects()["endpoints"], "nothing of it on the host"
