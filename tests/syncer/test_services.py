"""Services: the host copy routes to the tenant's host pods, with one ClusterIP for both."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer import names
from tests.kube.helpers import eventually, new_namespace

from .test_configs import pod_using
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


def test_when_the_host_gave_the_vclusters_ip_away_the_virtual_service_takes_the_hosts(vcluster, operator):
    other = new_namespace(operator.core, "ip-holder")
    try:
        holder = operator.core.create_namespaced_service(other, service("holder", {"app": "x"}))
        taken = holder.spec.cluster_ip

        vcluster.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}, cluster_ip=taken))

        def aligned():
            virtual = vcluster.tenant.core.read_namespaced_service("web", "default")
            host = operator.core.read_namespaced_service(vcluster.host_name("web"), vcluster.host_namespace)
            return virtual.spec.cluster_ip == host.spec.cluster_ip and (virtual, host)

        virtual, host = eventually(aligned, what="the virtual service with the host's ClusterIP")
        assert virtual.spec.cluster_ip != taken
        assert host.metadata.annotations[names.ANN_UID] == virtual.metadata.uid
    finally:
        operator.core.delete_namespace(other)


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
