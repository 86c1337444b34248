"""The pure translation rules, on objects shaped as the API serves them."""

from __future__ import annotations

import copy
import dataclasses
import subprocess

import pytest

from controlplane import components
from syncer import names
from syncer.kinds import configmaps, endpoints, events, nodes, pvcs, secrets, services
from syncer.kinds.pods import translate as pods
from syncer.policy import TenantPolicy
from syncer.translate import Refused, Target

TARGET = Target(vcluster="vc", namespace="host-ns")
ACCESS_VOLUME = {  # what the ServiceAccount admission plugin adds to every pod
    "name": "kube-api-access-abcde",
    "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                         "fieldPath": "metadata.namespace"}}]}},
    ]},
}


def virtual_pod(**spec) -> dict:
    base = {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1",
                     "labels": {"app": "web", "vcportal.io/managed-by": "intruder"},
                     "annotations": {"team": "a"}},
        "spec": {
            "serviceAccountName": "builder",
            "serviceAccount": "builder",
            "volumes": [copy.deepcopy(ACCESS_VOLUME)],
            "containers": [{"name": "app", "image": "app:1", "volumeMounts": [
                {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "priorityClassName": "tenant-high", "priority": 1000, "schedulerName": "tenant-scheduler",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    base["spec"].update(spec)
    return base


def test_a_pod_lands_in_the_host_namespace_under_its_host_name_with_our_marks():
    host = pods.host_pod(virtual_pod(), TARGET, "tok")
    meta = host["metadata"]
    assert (meta["name"], meta["namespace"]) == ("web-1-x-shop-x-vc", "host-ns")
    assert meta["labels"] == {"app": "web", names.LABEL_MANAGED_BY: "vc", names.LABEL_NAMESPACE: "shop"}
    assert meta["annotations"][names.ANN_NAME] == "web-1"
    assert meta["annotations"][names.ANN_NAMESPACE] == "shop"
    assert meta["annotations"][names.ANN_UID] == "uid-1"
    assert meta["annotations"][names.ANN_SERVICE_ACCOUNT] == "builder"
    assert meta["annotations"]["team"] == "a"
    assert "status" not in host


def test_the_host_pod_runs_as_the_host_account_without_a_host_token_or_tenant_priorities():
    spec = pods.host_pod(virtual_pod(), TARGET, "tok")["spec"]
    assert spec["serviceAccountName"] == "default" and "serviceAccount" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    for dropped in ("priorityClassName", "priority", "schedulerName"):
        assert dropped not in spec


def test_the_service_account_token_comes_from_the_token_secret_and_the_rest_is_renamed():
    sources = pods.host_pod(virtual_pod(), TARGET, "tok")["spec"]["volumes"][0]["projected"]["sources"]
    assert sources[0] == {"secret": {"name": "tok", "items": [{"key": "token-0", "path": "token"}]}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt-x-shop-x-vc"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == \
        f"metadata.annotations['{names.ANN_NAMESPACE}']"


def test_distinct_token_requests_get_distinct_keys():
    extra = {"name": "vault", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}},
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "again"}}]}}
    pod = virtual_pod(volumes=[copy.deepcopy(ACCESS_VOLUME), extra])
    assert pods.token_sources(pod) == [pods.TokenSource("token-0", None, 3607),
                                            pods.TokenSource("token-1", "vault", 600)]
    host = pods.host_pod(pod, TARGET, "tok")
    items = [s["secret"]["items"][0] for s in host["spec"]["volumes"][1]["projected"]["sources"]]
    assert items == [{"key": "token-1", "path": "vault-token"}, {"key": "token-0", "path": "again"}]


def test_a_pod_with_tokens_needs_a_token_secret():
    with pytest.raises(ValueError):
        pods.host_pod(virtual_pod(), TARGET, None)
    no_token = virtual_pod(volumes=[], automountServiceAccountToken=False)
    assert pods.token_sources(no_token) == []
    assert pods.host_pod(no_token, TARGET, None)["spec"]["volumes"] == []


def test_every_reference_to_a_configmap_secret_or_claim_is_renamed_and_collected():
    pod = virtual_pod(
        volumes=[{"name": "c", "configMap": {"name": "cfg"}},
                 {"name": "s", "secret": {"secretName": "sec", "optional": True}},
                 {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                 {"name": "p", "projected": {"sources": [{"secret": {"name": "psec"}}]}}],
        imagePullSecrets=[{"name": "pull"}],
        initContainers=[{"name": "init", "image": "i", "envFrom": [{"configMapRef": {"name": "initcfg"}}]}],
        containers=[{"name": "app", "image": "a", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "envsec", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": True}}}],
            "envFrom": [{"secretRef": {"name": "fromsec", "optional": True}}]}])

    refs = pods.pod_refs(pod)
    assert refs.configmaps == {"cfg": True, "initcfg": True}
    assert refs.secrets == {"sec": False, "psec": True, "pull": False, "envsec": True, "fromsec": False}
    assert refs.pvcs == {"data": True}

    spec = pods.host_pod(pod, TARGET, None)["spec"]
    assert spec["volumes"][0]["configMap"]["name"] == "cfg-x-shop-x-vc"
    assert spec["volumes"][1]["secret"]["secretName"] == "sec-x-shop-x-vc"
    assert spec["volumes"][2]["persistentVolumeClaim"]["claimName"] == "data-x-shop-x-vc"
    assert spec["volumes"][3]["projected"]["sources"][0]["secret"]["name"] == "psec-x-shop-x-vc"
    assert spec["imagePullSecrets"] == [{"name": "pull-x-shop-x-vc"}]
    assert spec["initContainers"][0]["envFrom"][0]["configMapRef"]["name"] == "initcfg-x-shop-x-vc"
    env = spec["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"]["name"] == "envsec-x-shop-x-vc"
    assert env[1]["valueFrom"]["configMapKeyRef"]["name"] == "cfg-x-shop-x-vc"
    assert spec["containers"][0]["envFrom"][0]["secretRef"]["name"] == "fromsec-x-shop-x-vc"
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == "cfg", "the virtual pod is left alone"


def test_downward_api_fields_read_the_virtual_identity():
    pod = virtual_pod(containers=[{"name": "app", "image": "a", "env": [
        {"name": n, "valueFrom": {"fieldRef": {"fieldPath": f}}}
        for n, f in (("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
                     ("SA", "spec.serviceAccountName"), ("NODE", "spec.nodeName"), ("IP", "status.podIP"))]}])
    env = pods.host_pod(pod, TARGET, "tok")["spec"]["containers"][0]["env"]
    paths = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env}
    assert paths == {"NAME": f"metadata.annotations['{names.ANN_NAME}']",
                     "NS": f"metadata.annotations['{names.ANN_NAMESPACE}']",
                     "UID": f"metadata.annotations['{names.ANN_UID}']",
                     "SA": f"metadata.annotations['{names.ANN_SERVICE_ACCOUNT}']",
                     "NODE": "spec.nodeName", "IP": "status.podIP"}


def test_pod_affinity_and_spread_are_scoped_to_the_virtual_namespaces():
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    other_ns = {**copy.deepcopy(term), "namespaces": ["data", "shop"]}
    no_selector = {"topologyKey": "zone"}
    pod = virtual_pod(
        affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [copy.deepcopy(term), other_ns]},
                  "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                      {"weight": 1, "podAffinityTerm": no_selector}]}},
        topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                    "labelSelector": {"matchLabels": {"app": "web"}}}])
    spec = pods.host_pod(pod, TARGET, "tok")["spec"]
    required = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["labelSelector"]["matchExpressions"] == [
        {"key": names.LABEL_MANAGED_BY, "operator": "In", "values": ["vc"]},
        {"key": names.LABEL_NAMESPACE, "operator": "In", "values": ["shop"]}]
    assert required[1]["labelSelector"]["matchExpressions"][1]["values"] == ["data", "shop"]
    assert "namespaces" not in required[1]
    assert spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "podAffinityTerm"] == no_selector, "a term without a selector matches nothing, and still must not"
    spread = spec["topologySpreadConstraints"][0]["labelSelector"]
    assert {e["key"] for e in spread["matchExpressions"]} == {names.LABEL_MANAGED_BY, names.LABEL_NAMESPACE}


def test_a_node_the_tenant_names_is_asked_of_the_host_scheduler_only_where_the_policy_lets_pods_choose():
    spec = pods.host_pod(virtual_pod(nodeName="kwok-node-1"), TARGET, "tok")["spec"]
    assert "nodeName" not in spec and "nodeSelector" not in spec
    choosing = Target("vc", "host-ns", policy=TenantPolicy(node_label_keys=("kubernetes.io/hostname",)))
    spec = pods.host_pod(virtual_pod(nodeName="kwok-node-1"), choosing, "tok")["spec"]
    assert "nodeName" not in spec
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "kwok-node-1"}


def test_hostname_and_subdomain_keep_the_virtual_identity():
    spec = pods.host_pod(virtual_pod(subdomain="db"), TARGET, "tok")["spec"]
    assert spec["hostname"] == "web-1"
    assert spec["subdomain"] == "db-x-shop-x-vc"
    dotted = virtual_pod()
    dotted["metadata"]["name"] = "web.1"
    assert "hostname" not in pods.host_pod(dotted, TARGET, "tok")["spec"]


KUBELET_HOSTS = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                 "10.88.0.5\tweb-1.db-x-shop-x-vc.host-ns.svc.cluster.local\tweb-1\n"
                 "\n# Entries added by HostAliases.\n10.96.0.1\tkubernetes\tkubernetes.default\n")


def test_a_pod_with_a_subdomain_gets_its_virtual_names_in_etc_hosts_from_a_first_init_container(tmp_path):
    target = dataclasses.replace(TARGET, hosts_image="busybox:1.37")
    vpod = virtual_pod(subdomain="db", initContainers=[{"name": "setup", "image": "app:1"}])
    vpod["spec"]["containers"].append({"name": "side", "image": "side:1", "volumeMounts": [
        {"name": "own", "mountPath": "/etc/hosts"}]})
    spec = pods.host_pod(vpod, target, "tok")["spec"]

    writer, setup = spec["initContainers"]
    assert (writer["name"], writer["image"], setup["name"]) == (pods.ETC_HOSTS, "busybox:1.37", "setup")
    assert writer["securityContext"]["runAsNonRoot"] and writer["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert writer["resources"]["limits"], "counted in the host namespace's quota, as little as it needs"
    hosts = tmp_path / "hosts"
    hosts.write_text(KUBELET_HOSTS)
    rewritten = subprocess.run(["sed", "-E", writer["command"][-1], str(hosts)], capture_output=True, text=True,
                               check=True).stdout
    assert rewritten == KUBELET_HOSTS.replace("web-1.db-x-shop-x-vc.host-ns.svc.cluster.local",
                                              "web-1.db.shop.svc.cluster.local")

    mounted = {c["name"]: [m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/etc/hosts"]
               for c in spec["initContainers"] + spec["containers"]}
    written = [{"name": pods.ETC_HOSTS, "mountPath": "/etc/hosts", "subPath": "hosts"}]
    assert mounted == {pods.ETC_HOSTS: [], "setup": written, "app": written,
                       "side": [{"name": "own", "mountPath": "/etc/hosts"}]}, "a container's own mount wins"
    assert {"name": pods.ETC_HOSTS, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}} in spec["volumes"]


@pytest.mark.parametrize("hosts_image, spec", [
    (None, {"subdomain": "db"}),
    ("busybox:1.37", {}),
    ("busybox:1.37", {"subdomain": "db", "volumes": [{"name": pods.ETC_HOSTS, "emptyDir": {}}]}),
    # Escape: the vcluster's API server allows DNS labels only; anything else never reaches sed.
    ("busybox:1.37", {"subdomain": "db/;e id/", "hostname": "x"}),
    ("busybox:1.37", {"subdomain": "db", "hostname": "x\nfake"}),
])
def test_etc_hosts_stays_the_kubelets_without_an_image_a_subdomain_or_a_free_name(hosts_image, spec):
    host = pods.host_pod(virtual_pod(**spec), dataclasses.replace(TARGET, hosts_image=hosts_image), "tok")["spec"]
    assert "initContainers" not in host
    assert [v for v in host["volumes"] if v["name"] == pods.ETC_HOSTS] == spec.get("volumes", [])


def test_the_etc_hosts_writer_is_neither_patched_nor_reported():
    vpod = virtual_pod(subdomain="db")
    running = pods.host_pod(vpod, dataclasses.replace(TARGET, hosts_image="busybox:1.37"), "tok")
    assert pods.pod_patch(pods.host_pod(vpod, dataclasses.replace(TARGET, hosts_image="busybox:1.38"), "tok"),
                          running) is None, "a new image is for new pods: a running pod's init is done"
    tenants = {"name": "setup", "ready": True}
    status = {"phase": "Running", "initContainerStatuses": [{"name": pods.ETC_HOSTS, "ready": True}, tenants]}
    assert pods.pod_status_patch(status, {})["initContainerStatuses"] == [tenants]
    assert "initContainerStatuses" not in pods.pod_status_patch({**status, "initContainerStatuses": [
        {"name": pods.ETC_HOSTS}]}, {})


def test_the_syncer_knows_the_vclusters_cluster_domain():
    assert pods.CLUSTER_DOMAIN == components.CLUSTER_DOMAIN


def test_with_an_api_endpoint_kubernetes_default_points_at_the_vcluster():
    target = Target(vcluster="vc", namespace="host-ns", api_endpoint=("10.96.5.5", 443), dns_ip="10.96.5.6")
    spec = pods.host_pod(virtual_pod(), target, "tok")["spec"]
    assert spec["hostAliases"] == [{"ip": "10.96.5.5", "hostnames": list(pods.KUBERNETES_NAMES)}]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.5.5" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert spec["dnsPolicy"] == "None"
    assert spec["dnsConfig"]["nameservers"] == ["10.96.5.6"]
    assert spec["dnsConfig"]["searches"][0] == "shop.svc.cluster.local"


def service(name: str, cluster_ip: str | None, *ports: dict, namespace: str = "shop") -> dict:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": list(ports)}}


def test_containers_get_the_variables_of_the_vclusters_services_as_the_kubelet_gives_them():
    target = Target(vcluster="vc", namespace="host-ns", api_endpoint=("10.96.5.5", 443))
    services = [service("redis-main", "10.96.0.20", {"name": "client", "port": 6379, "protocol": "TCP"},
                        {"port": 53, "protocol": "UDP"}),
                service("headless", "None", {"port": 80}),
                service("kubernetes", "10.0.0.1", {"port": 443}, namespace="default")]  # the vcluster's own
    pod = virtual_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "REDIS_MAIN_SERVICE_PORT", "value": "mine"}]
    container = pods.host_pod(pod, target, "tok", services)["spec"]["containers"][0]
    env = [(e["name"], e.get("value")) for e in container["env"]]
    assert dict(env) == {
        "REDIS_MAIN_SERVICE_HOST": "10.96.0.20", "REDIS_MAIN_SERVICE_PORT": "mine",  # the container's own wins
        "REDIS_MAIN_SERVICE_PORT_CLIENT": "6379", "REDIS_MAIN_PORT": "tcp://10.96.0.20:6379",
        "REDIS_MAIN_PORT_6379_TCP": "tcp://10.96.0.20:6379", "REDIS_MAIN_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MAIN_PORT_6379_TCP_PORT": "6379", "REDIS_MAIN_PORT_6379_TCP_ADDR": "10.96.0.20",
        "REDIS_MAIN_PORT_53_UDP": "udp://10.96.0.20:53", "REDIS_MAIN_PORT_53_UDP_PROTO": "udp",
        "REDIS_MAIN_PORT_53_UDP_PORT": "53", "REDIS_MAIN_PORT_53_UDP_ADDR": "10.96.0.20",
        # the vcluster's API server in place of the host's, whose variables the kubelet adds
        "KUBERNETES_SERVICE_HOST": "10.96.5.5", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.5.5:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.5.5:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.5.5",
    }
    assert env[-1] == ("REDIS_MAIN_SERVICE_PORT", "mine") and len(env) == len(dict(env))

    # A Service of the pod's own namespace named `kubernetes` wins, as the kubelet has it.
    theirs = service("kubernetes", "10.96.0.30", {"port": 8443, "protocol": "TCP"})
    env = dict((e["name"], e["value"]) for e in pods.host_pod(
        virtual_pod(), target, "tok", [theirs])["spec"]["containers"][0]["env"])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.30" and env["KUBERNETES_SERVICE_PORT"] == "8443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.5.5", "the host's names stay covered"

    pod["spec"]["enableServiceLinks"] = False
    env = pods.host_pod(pod, target, "tok", services)["spec"]["containers"][0]["env"]
    assert not [e for e in env if e["name"].startswith("REDIS_MAIN_SERVICE_HOST")]
    assert pods.service_variables("v6", {"clusterIP": "fd00::1", "ports": [{"port": 80}]})[2] == {
        "name": "V6_PORT", "value": "tcp://[fd00::1]:80"}


def kube_dns(cluster_ip: str | None) -> dict:
    return {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"clusterIP": cluster_ip}}


@pytest.mark.parametrize("virtual, host_copies, expected", [
    (None, [], None),  # no cluster DNS in the vcluster
    (kube_dns("10.0.0.10"), [], None),  # not copied to the host yet
    (kube_dns("10.0.0.10"), [kube_dns("10.96.7.7")], None),  # the vcluster's own IP: does not route on the host
    (kube_dns("10.96.7.7"), [kube_dns("10.96.7.7")], "10.96.7.7"),  # recreated with the host's IP
    (kube_dns("None"), [kube_dns("None")], None),  # headless: no address to point at
])
def test_the_cluster_dns_address_is_the_kube_dns_ip_once_the_host_copy_has_it(virtual, host_copies, expected):
    assert pods.routed_cluster_ip(virtual, host_copies) == expected


def test_without_an_api_endpoint_nothing_points_anywhere():
    spec = pods.host_pod(virtual_pod(), TARGET, "tok")["spec"]
    assert "hostAliases" not in spec and "dnsConfig" not in spec
    assert "env" not in spec["containers"][0]


def test_only_what_may_change_on_a_running_pod_is_patched():
    target = Target("vc", "host-ns", policy=TenantPolicy.from_dict({"tolerations": [{"key": "gpu",
                                                                                 "operator": "Exists"}]}))
    vpod = virtual_pod()
    actual = pods.host_pod(vpod, target, "tok")
    assert pods.pod_patch(pods.host_pod(vpod, target, "tok"), actual) is None

    actual["metadata"]["annotations"]["host.example/added"] = "by a host component"
    vpod["metadata"]["labels"] = {"app": "web", "tier": "front"}
    vpod["metadata"]["annotations"] = {}
    vpod["spec"]["containers"][0]["image"] = "app:2"
    vpod["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    patch = pods.pod_patch(pods.host_pod(vpod, target, "tok"), actual)

    assert patch["metadata"]["labels"] == {"tier": "front"}
    assert patch["metadata"]["annotations"]["team"] is None, "a key the tenant removed is removed"
    assert "host.example/added" not in patch["metadata"]["annotations"], "host additions stay"
    assert patch["spec"] == {"containers": [{"name": "app", "image": "app:2"}],
                             "tolerations": [{"key": "gpu", "operator": "Exists"}]}


def test_an_in_place_resize_is_patched_through_the_resize_subresource_only():
    vpod = virtual_pod()
    vpod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                  "limits": {"memory": "128Mi"}}
    actual = pods.host_pod(vpod, dataclasses.replace(TARGET, hosts_image="busybox"), "tok")
    assert pods.resize_patch(pods.host_pod(vpod, TARGET, "tok"), actual) is None

    # The host's LimitRange gave the host copy a default CPU limit: not the tenant's to undo.
    actual["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "500m"
    assert pods.resize_patch(pods.host_pod(vpod, TARGET, "tok"), actual) is None

    vpod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "200m", "memory": "64Mi"},
                                                  "limits": {"cpu": "400m", "memory": "128Mi"}}
    vpod["spec"]["resources"] = {"requests": {"cpu": "1"}}
    desired = pods.host_pod(vpod, TARGET, "tok")
    assert pods.resize_patch(desired, actual) == {"spec": {
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "400m"}}}],
        "resources": {"requests": {"cpu": "1"}},
    }}
    assert pods.pod_patch(desired, actual) is None, "resources are the resize subresource's alone"


def test_container_statuses_show_only_the_resources_the_virtual_pod_sets():
    spec = {"containers": [{"name": "app", "resources": {"requests": {"cpu": "2m"}, "limits": {"cpu": "10m"}}},
                           {"name": "bare"}]}
    defaults = {"cpu": "250m", "memory": "64Mi"}  # the host LimitRange's
    host_status = {"containerStatuses": [
        {"name": "app", "allocatedResources": {"cpu": "2m", "memory": "64Mi"},
         "resources": {"requests": {"cpu": "2m", "memory": "64Mi"}, "limits": {"cpu": "10m", "memory": "64Mi"}}},
        {"name": "bare", "allocatedResources": defaults, "resources": {"requests": defaults, "limits": defaults}}]}
    status = pods.with_virtual_resources(host_status, spec)
    assert status["containerStatuses"] == [
        {"name": "app", "allocatedResources": {"cpu": "2m"}, "resources": {"requests": {"cpu": "2m"},
                                                                          "limits": {"cpu": "10m"}}},
        {"name": "bare", "resources": {}}]


def test_observed_generations_are_the_virtual_pods_once_the_host_has_every_change():
    host_status = {"observedGeneration": 3, "conditions": [
        {"type": "Ready", "status": "True", "observedGeneration": 3},
        {"type": "PodScheduled", "status": "True", "observedGeneration": 1},
        {"type": "Initialized", "status": "True"}]}
    virtual_status = {"observedGeneration": 4, "conditions": [{"type": "Ready", "observedGeneration": 4}]}

    # A virtual spec changed before the host pod existed: generation 5 here, 3 there.
    patch = pods.pod_status_patch(host_status, virtual_status, generation_offset=2)
    assert patch["observedGeneration"] == 5
    assert [c.get("observedGeneration") for c in patch["conditions"]] == [5, 3, None]

    # A resize the host has not taken: nothing may read it as observed.
    patch = pods.pod_status_patch(host_status, virtual_status, generation_offset=None)
    assert "observedGeneration" not in patch
    assert [c.get("observedGeneration") for c in patch["conditions"]] == [4, None, None]


def test_host_status_is_copied_back_except_the_qos_class_and_nominated_node():
    host_status = {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                   "hostIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "app", "ready": True}], "qosClass": "Guaranteed",
                   "nominatedNodeName": "kwok-node-0"}
    virtual_status = {"phase": "Pending", "qosClass": "BestEffort", "message": "old"}
    patch = pods.pod_status_patch(host_status, virtual_status)
    assert patch == {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                     "hostIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}],
                     "containerStatuses": [{"name": "app", "ready": True}], "message": None}
    applied = {**virtual_status, **{k: v for k, v in patch.items() if v is not None}}
    del applied["message"]
    assert pods.pod_status_patch(host_status, applied) is None


def test_a_resize_the_host_refused_reads_as_the_kubelets_infeasible_and_keeps_its_time():
    host_status = {"conditions": [{"type": "Ready", "status": "True"}]}
    status = pods.with_infeasible_resize(host_status, {}, "exceeded quota: team")
    assert [(c["type"], c.get("reason"), c.get("message")) for c in status["conditions"]] == [
        ("Ready", None, None), ("PodResizePending", "Infeasible", "exceeded quota: team")]
    assert pods.with_infeasible_resize(host_status, status, "exceeded quota: team") == status
    assert pods.pod_status_patch(pods.with_infeasible_resize(host_status, status, "exceeded quota: team"),
                                 status) is None, "no status write on every reconcile"


def test_a_gated_pod_gets_the_schedulers_condition_once():
    patch = pods.gated_status_patch({"phase": "Pending"})
    [condition] = patch["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("PodScheduled", "False", "SchedulingGated")
    assert pods.gated_status_patch(patch) is None
    assert not pods.was_scheduled({"status": patch})


def test_a_pod_counts_as_scheduled_only_once_it_carried_host_status():
    assert not pods.was_scheduled(virtual_pod())
    scheduled = virtual_pod()
    scheduled["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    assert pods.was_scheduled(scheduled)


def virtual_service(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "s-1", "labels": {"tier": "front"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.2"],
                     "selector": {"app": "web"}, "externalIPs": ["1.2.3.4"],
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30001}], **spec}}


def test_a_service_selects_only_its_own_namespaces_pods_on_the_host():
    host = services.host_service(virtual_service(), TARGET)
    assert host["metadata"]["name"] == "web-x-shop-x-vc"
    assert host["spec"]["selector"] == {"app": "web", names.LABEL_MANAGED_BY: "vc", names.LABEL_NAMESPACE: "shop"}
    assert "externalIPs" not in host["spec"] and "clusterIP" not in host["spec"]
    assert host["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_an_external_name_service_is_refused_unless_the_host_allows_it():
    external = virtual_service(type="ExternalName", externalName="metadata.google.internal", clusterIP=None,
                               clusterIPs=None, selector=None)
    with pytest.raises(Refused, match="ExternalName"):
        services.host_service(external, TARGET)
    allowing = Target("vc", "host-ns", policy=TenantPolicy(external_name_services=True))
    assert services.host_service(external, allowing)["spec"]["externalName"] == "metadata.google.internal"


def test_headless_and_selectorless_services_stay_so():
    host = services.host_service(virtual_service(clusterIP="None", clusterIPs=["None"], selector=None), TARGET)
    assert host["spec"]["clusterIP"] == "None"
    assert host["spec"].get("selector") is None


def test_a_service_is_patched_only_for_copied_fields_and_keeps_host_node_ports():
    desired = services.host_service(virtual_service(type="NodePort"), TARGET)
    actual = copy.deepcopy(desired)
    actual["spec"]["ports"][0]["nodePort"] = 31999
    actual["spec"]["clusterIP"] = "10.96.9.9"
    assert services.service_spec_patch(desired, actual) is None
    desired["spec"]["ports"][0]["port"] = 81
    assert services.service_spec_patch(desired, actual) == {"ports": desired["spec"]["ports"]}


def test_a_recreated_service_keeps_the_tenants_spec_with_the_hosts_ip():
    recreated = services.recreated_service(virtual_service(), ["10.96.7.7"])
    assert recreated["spec"]["clusterIP"] == "10.96.7.7" and recreated["spec"]["clusterIPs"] == ["10.96.7.7"]
    assert recreated["spec"]["selector"] == {"app": "web"}
    assert "uid" not in recreated["metadata"] and recreated["metadata"]["labels"] == {"tier": "front"}


def test_hand_written_endpoints_are_put_back_as_the_tenant_wrote_them():
    written = {"metadata": {"name": "ext", "namespace": "shop", "uid": "e-1", "resourceVersion": "7",
                            "labels": {"a": "b"}}, "subsets": [{"addresses": [{"ip": "10.244.0.5"}]}]}
    assert services.restored_endpoints(written) == {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext", "namespace": "shop", "labels": {"a": "b"}},
        "subsets": [{"addresses": [{"ip": "10.244.0.5"}]}]}


def test_endpoints_point_at_host_pods_and_only_at_this_vclusters_pods():
    written = {"metadata": {"name": "ext", "namespace": "shop", "uid": "e-1"}, "subsets": [
        {"addresses": [{"ip": "10.244.0.5", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}},
                       {"ip": "10.244.0.6", "targetRef": {"kind": "Pod", "name": "x", "namespace": "elsewhere"}},
                       {"ip": "10.96.0.1"}],
         "notReadyAddresses": [{"ip": "192.0.2.1"}],
         "ports": [{"port": 80}]},
        {"addresses": [{"ip": "169.254.169.254"}], "ports": [{"port": 80}]}]}
    host, dropped = endpoints.host_endpoints(written, TARGET, pod_ips={"10.244.0.5", "10.244.0.6"})
    assert host["subsets"] == [{"addresses": [
        {"ip": "10.244.0.5", "targetRef": {"kind": "Pod", "namespace": "host-ns", "name": "web-1-x-shop-x-vc"}},
        {"ip": "10.244.0.6"}], "ports": [{"port": 80}]}]
    assert sorted(dropped) == ["10.96.0.1", "169.254.169.254", "192.0.2.1"]
    assert host["metadata"]["name"] == "ext-x-shop-x-vc"


def test_secrets_and_configmaps_copy_their_content_and_a_token_secret_becomes_opaque():
    secret = {"metadata": {"name": "s", "namespace": "shop", "uid": "u"}, "type": "kubernetes.io/service-account-token",
              "data": {"token": "eA=="}}
    host = secrets.host_secret(secret, TARGET)
    assert host["type"] == "Opaque" and host["data"] == {"token": "eA=="}
    configmap = {"metadata": {"name": "c", "namespace": "shop", "uid": "u"}, "data": {"a": "1"}, "immutable": True}
    host = configmaps.host_configmap(configmap, TARGET)
    assert (host["data"], host["immutable"]) == ({"a": "1"}, True)
    assert configmaps.content_differs(host, {**host, "data": {"a": "2"}})
    assert not configmaps.content_differs(host, copy.deepcopy(host))


def test_a_claim_binds_on_the_host_by_class_and_size_only():
    claim = {"metadata": {"name": "data", "namespace": "shop", "uid": "u"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "fast",
        "volumeName": "pv-virtual", "selector": {"matchLabels": {"a": "b"}},
        "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"}}}
    spec = pvcs.host_pvc(claim, dataclasses.replace(TARGET, default_storage_class="fast"))["spec"]
    assert spec == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "fast",
                    "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed-x-shop-x-vc"}}


def test_a_virtual_node_mirrors_the_host_node_without_its_taints_or_machine_identifiers():
    info = {"machineID": "m-1", "systemUUID": "u-1", "bootID": "b-1", "kubeletVersion": "v1.33.0",
            "architecture": "amd64"}
    host_node = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}, "uid": "h"},
                 "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDR": "10.244.1.0/24",
                          "providerID": "aws:///eu-west-1a/i-0abc"},
                 "status": {"capacity": {"cpu": "8"}, "allocatable": {"cpu": "8"}, "images": ["big"],
                            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}],
                            "nodeInfo": info}}
    node = nodes.virtual_node(host_node, "vc")
    assert node["metadata"] == {"name": "n1", "labels": {"kubernetes.io/hostname": "n1",
                                                          names.LABEL_MANAGED_BY: "vc"}}
    assert node["spec"] == {}
    assert node["status"] == {"capacity": {"cpu": "8"}, "allocatable": {"cpu": "8"},
                              "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": None}],
                              "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                                           "kubeletVersion": "v1.33.0", "architecture": "amd64"},
                              "addresses": [], "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}
    assert info["machineID"] == "m-1", "the host node is left alone"
    assert not nodes.node_status_differs(node, node)
    host_node["status"]["conditions"][0]["lastHeartbeatTime"] = "t2"
    assert not nodes.node_status_differs(nodes.virtual_node(host_node, "vc"), node), "heartbeats alone"


def test_a_virtual_node_names_the_syncers_kubelet_endpoint_never_the_host_nodes_address():
    host_node = {"metadata": {"name": "n1"},
                 "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.7"},
                                          {"type": "Hostname", "address": "n1.host.example"}],
                            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    node = nodes.virtual_node(host_node, "vc", ("127.0.0.1", 40123))
    assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 40123}}

    without = nodes.virtual_node(host_node, "vc")
    assert without["status"]["addresses"] == []
    assert without["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    served = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}}  # the API drops an empty list
    assert not nodes.node_status_differs(without, served)
    assert nodes.node_status_differs(node, served)
    assert nodes.node_status_differs(without, {"status": {**node["status"]}}), "an old address is taken away"


def test_a_host_event_is_told_about_the_virtual_object_in_virtual_names():
    event = {"metadata": {"name": "web-1-x-shop-x-vc.abc", "uid": "ev-1"}, "reason": "Scheduled",
             "message": "Successfully assigned host-ns/web-1-x-shop-x-vc to kwok-node-0", "type": "Normal",
             "count": 1, "firstTimestamp": "t0", "lastTimestamp": "t1", "source": {"component": "default-scheduler"},
             "involvedObject": {"kind": "Pod", "name": "web-1-x-shop-x-vc", "namespace": "host-ns"}}
    virtual = events.virtual_event(event, "Pod", virtual_pod(), "web-1-x-shop-x-vc", "host-ns")
    assert virtual["message"] == "Successfully assigned shop/web-1 to kwok-node-0"
    assert virtual["metadata"]["namespace"] == "shop"
    assert virtual["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "shop",
                                         "uid": "uid-1"}
    assert virtual["metadata"]["name"] == events.virtual_event(event, "Pod", virtual_pod(), "x", "y")[
        "metadata"]["name"], "the same host event always maps to the same virtual event"
