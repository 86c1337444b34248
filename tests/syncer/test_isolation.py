"""What keeps tenants apart on a shared host: names, marks, tokens and Pod Security."""

from __future__ import annotations

import base64

from kubernetes import client

from syncer import names
from tests.kube.helpers import eventually

from .test_configs import configmap, pod_using
from .test_pods import deployment, running
from .test_services import service

LONG = 253  # the longest name a ConfigMap or Pod may have


def test_names_at_the_length_limits_map_to_valid_host_names_and_back(vcluster):
    tenant = vcluster.tenant.core
    namespace = "n" * 63
    tenant.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    eventually(lambda: tenant.read_namespaced_service_account("default", namespace), what="the default account")
    config_name = "c" * (LONG - 20) + ".example.com"[: 20]
    pod_name = "p" * 200 + ".with.dots"
    service_name = "s" * 63
    tenant.create_namespaced_config_map(namespace, configmap(config_name, mode="x"))
    tenant.create_namespaced_pod(namespace, pod_using(pod_name, configmap=config_name))
    tenant.create_namespaced_service(namespace, service(service_name, {"app": "x"}))

    eventually(lambda: running(tenant.list_namespaced_pod(namespace).items), what="the long-named pod Running")
    objects = eventually(lambda: (o := vcluster.host_objects()) and o["services"] and o, what="the host service")
    host = {kind: {o.metadata.annotations[names.ANN_NAME]: o for o in objs} for kind, objs in objects.items()}
    for kind, virtual_name in (("pods", pod_name), ("configmaps", config_name), ("services", service_name)):
        obj = host[kind][virtual_name]
        assert len(obj.metadata.name) <= 63
        assert obj.metadata.name == names.host_name(virtual_name, namespace, vcluster.name)
        assert obj.metadata.annotations[names.ANN_NAMESPACE] == namespace
        assert obj.metadata.labels[names.LABEL_NAMESPACE] == namespace


def test_two_vclusters_using_the_same_names_in_one_host_namespace_do_not_collide(make_vcluster):
    first = make_vcluster("one")
    second = make_vcluster("two", host_namespace=first.host_namespace)
    for vc in (first, second):
        vc.tenant.apps.create_namespaced_deployment("default", deployment("web", 2))
        vc.tenant.core.create_namespaced_service("default", service("web", {"app": "web"}))
    for vc in (first, second):
        eventually(lambda vc=vc: len(running(vc.tenant.core.list_namespaced_pod("default").items)) == 2,
                   what=f"the pods of {vc.name} Running")

    one_pods = {p.metadata.name for p in first.host_pods()}
    two_pods = {p.metadata.name for p in second.host_pods()}
    assert len(one_pods) == len(two_pods) == 2 and not one_pods & two_pods

    second.tenant.apps.delete_namespaced_deployment("web", "default")
    second.tenant.core.delete_namespaced_service("web", "default")
    eventually(lambda: not second.host_pods() and not second.host_objects()["services"],
               what="the second vcluster's host objects gone")
    assert {p.metadata.name for p in first.host_pods()} == one_pods
    assert len(first.host_objects()["services"]) == 1


def test_the_host_carries_no_tenant_token_in_annotations_or_labels(vcluster):
    tenant = vcluster.tenant.core
    tenant.create_namespaced_pod("default", pod_using("app"))
    eventually(lambda: running(tenant.list_namespaced_pod("default").items), what="the pod Running")
    host_pod = vcluster.host_pods()[0]
    token_secret = vcluster.operator.core.read_namespaced_secret(
        names.token_secret_name(host_pod.metadata.name), vcluster.host_namespace)
    tokens = [base64.b64decode(v).decode() for v in token_secret.data.values()]
    assert tokens

    # The token is the vcluster's, bound to the virtual pod; the host does not accept it.
    review = client.AuthenticationV1Api(vcluster.tenant.api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=tokens[0])))
    assert review.status.authenticated
    assert review.status.user.username == "system:serviceaccount:default:default"
    assert review.status.user.extra["authentication.kubernetes.io/pod-name"] == ["app"]
    # Issued again once the pod was bound, as a kubelet's: the Secret's tokens name the pod's (virtual) node.
    node = vcluster.tenant.core.read_node(tenant.read_namespaced_pod("app", "default").spec.node_name)
    eventually(lambda: token_user(vcluster, secret_token(vcluster, host_pod.metadata.name)).extra.get(
        "authentication.kubernetes.io/node-uid") == [node.metadata.uid], what="the Secret's token naming the pod's node")
    host_review = client.AuthenticationV1Api(vcluster.operator.api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=tokens[0])))
    assert not host_review.status.authenticated

    # It lives in a Secret that goes with the host pod, and nowhere in metadata.
    assert [(o.kind, o.name, o.uid) for o in token_secret.metadata.owner_references] == \
        [("Pod", host_pod.metadata.name, host_pod.metadata.uid)]
    for objects in vcluster.host_objects().values():
        for obj in objects:
            marks = {**(obj.metadata.labels or {}), **(obj.metadata.annotations or {})}
            assert not [v for v in marks.values() if any(t in v for t in tokens) or v.startswith("eyJ")], obj.metadata.name

    # The host pod mounts no host token: only the virtual one, where clients look for it.
    assert host_pod.spec.automount_service_account_token is False
    projected = [v.projected for v in host_pod.spec.volumes if v.projected]
    assert not [s for p in projected for s in p.sources if s.service_account_token]
    secret_sources = [s.secret.name for p in projected for s in p.sources if s.secret]
    assert secret_sources == [token_secret.metadata.name]
    mounts = {m.mount_path for m in host_pod.spec.containers[0].volume_mounts}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts


def test_a_pod_the_host_pod_security_level_refuses_stays_pending_with_an_event(make_vcluster):
    vcluster = make_vcluster(host_labels={"pod-security.kubernetes.io/enforce": "baseline"})
    tenant = vcluster.tenant.core
    pod = pod_using("root")
    pod.spec.containers[0].security_context = client.V1SecurityContext(privileged=True)
    tenant.create_namespaced_pod("default", pod)
    tenant.create_namespaced_pod("default", pod_using("plain"))

    def refusal():
        events = tenant.list_namespaced_event("default", field_selector="involvedObject.name=root").items
        return [e for e in events if e.reason == "HostRefused"]

    event = eventually(refusal, what="an event on the refused pod")[0]
    assert event.type == "Warning"
    assert "violates PodSecurity" in event.message and "privileged" in event.message
    eventually(lambda: tenant.read_namespaced_pod("plain", "default").status.phase == "Running",
               what="the compliant pod Running")
    assert tenant.read_namespaced_pod("root", "default").status.phase == "Pending"
    assert [p.metadata.annotations[names.ANN_NAME] for p in vcluster.host_pods()] == ["plain"]


def token_user(vcluster, token: str) -> client.V1UserInfo:
    """Who the vcluster takes `token` for."""
    review = client.AuthenticationV1Api(vcluster.tenant.api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
    assert review.status.authenticated, review.status.error
    return review.status.user


def secret_token(vcluster, host_pod: str) -> str:
    secret = vcluster.operator.core.read_namespaced_secret(names.token_secret_name(host_pod), vcluster.host_namespace)
    return base64.b64decode(next(iter(secret.data.values()))).decode()
