"""Provisioning never lets two vclusters share a host namespace, never takes over a host
object it did not write, and caps how many objects a tenant may create on the host.
Each test attempts the escape against the real host cluster.

Vclusters here ask for a Kubernetes version no runtime has: the pipeline writes every
host object, then fails at the control plane, so no control plane has to start. Part of
the runtime contract: every test runs on each runtime (conftest.runtime_host), whose
quota share the namespace's limits include.
"""

import pytest
from django.db import IntegrityError, transaction
from kubernetes import client
from kubernetes.client.rest import ApiException

from provisioning import installation, manifests, pipeline
from provisioning.hostkube import HostKube
from provisioning.models import Placement
from syncer.rbac import token_kubeconfig
from tests.kube.helpers import eventually, pod
from tests.portal.conftest import make_host, make_team, make_vcluster
from vclusters.models import Phase, VCluster

pytestmark = pytest.mark.django_db

HOST_OBJECTS_ONLY = {"kubernetes_version": "v1.30.0"}
RBAC = "rbac.authorization.k8s.io/v1"


def _host_objects_of(provisioned, name, team, **fields) -> VCluster:
    vcluster = provisioned(name, team=team, **HOST_OBJECTS_ONLY, **fields)
    assert vcluster.steps.get(name="Syncer identity").status == "Succeeded", vcluster.message
    return vcluster


@pytest.fixture
def core(runtime_host):
    return client.CoreV1Api(runtime_host.cluster.api_client())


@pytest.fixture
def foreign_objects(core, runtime_host):
    """Host objects made by someone else; removed after the test."""
    made = []
    yield made
    rbac = client.RbacAuthorizationV1Api(runtime_host.cluster.api_client())
    for kind, name in made:
        try:
            core.delete_namespace(name) if kind == "Namespace" else rbac.delete_cluster_role_binding(name)
        except ApiException:
            pass


def _teardown(vcluster):
    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.DELETING)
    pipeline.teardown(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.DELETED


# Unambiguous names, unique placements -------------------------------------------
def test_teams_whose_names_collided_get_separate_namespaces(provisioned, core):
    data, data_science = make_team("data"), make_team("data-science")
    one = _host_objects_of(provisioned, "science-prod", data)
    two = _host_objects_of(provisioned, "prod", data_science)

    namespaces = {vc.pk: vc.placement.host_namespace for vc in (one, two)}
    assert namespaces[one.pk] != namespaces[two.pk]
    for pk, ns in namespaces.items():
        assert core.read_namespace(ns).metadata.labels[manifests.VCLUSTER_LABEL] == str(pk)
        subjects = client.RbacAuthorizationV1Api(core.api_client).read_namespaced_role_binding(
            manifests.SYNCER, ns).subjects
        assert [s.namespace for s in subjects] == [ns]


def test_the_database_refuses_a_second_live_placement_on_one_host_namespace(world):
    host = make_host("east")
    first, second = make_vcluster(world.alpha, "first"), make_vcluster(world.beta, "second")
    Placement.objects.create(vcluster=first, host_cluster=host, host_namespace="vc-shared")
    with pytest.raises(IntegrityError), transaction.atomic():
        Placement.objects.create(vcluster=second, host_cluster=host, host_namespace="vc-shared")

    # Once the first one's teardown is finished (its receipt written), the name is free.
    Placement.objects.filter(vcluster=first).update(receipt={"steps": [], "finished_at": "then"})
    Placement.objects.create(vcluster=second, host_cluster=host, host_namespace="vc-shared")


# Never adopt what is not ours ---------------------------------------------------
@pytest.mark.parametrize(("labels", "conflict"), [
    ({**manifests.MANAGED_BY, manifests.VCLUSTER_LABEL: "999999", "team": "other"},
     "has vcportal.io/vcluster-id=999999, not {pk}"),
    ({"team": "other"}, "has no app.kubernetes.io/managed-by label, so it is not vcportal's"),
    ({**manifests.MANAGED_BY, manifests.VCLUSTER_LABEL: "{pk}", manifests.INSTALLATION_LABEL: "another-portal"},
     "has vcportal.io/installation=another-portal, not {installation}"),
])
def test_a_namespace_that_is_not_ours_is_neither_adopted_nor_deleted(
    labels, conflict, world, host, var_dir, core, foreign_objects
):
    vcluster = make_vcluster(world.alpha, "squatted", **HOST_OBJECTS_ONLY)
    me = installation.current()
    ns = manifests.host_namespace_name(me.token, vcluster.pk, "alpha", "squatted")
    labels = {k: v.format(pk=vcluster.pk) for k, v in labels.items()}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
    foreign_objects.append(("Namespace", ns))
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="theirs")))
    before = core.read_namespace(ns)

    pipeline.provision(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.FAILED
    assert vcluster.message == (
        f"Host namespace: Namespace {ns} already exists and {conflict.format(pk=vcluster.pk, installation=me.name)}; "
        "refusing to take it over"
    )
    after = core.read_namespace(ns)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert core.list_namespaced_resource_quota(ns).items == []

    _teardown(vcluster)
    assert core.read_namespace(ns).metadata.deletion_timestamp is None
    assert core.read_namespaced_config_map("theirs", ns)
    receipt = dict((s["step"], s["done"]) for s in vcluster.placement.receipt["steps"])
    assert "left alone" in receipt["Delete host namespace"]


def test_a_cluster_role_binding_that_is_not_ours_is_neither_adopted_nor_deleted(
    world, host, var_dir, runtime_host, foreign_objects
):
    vcluster = make_vcluster(world.alpha, "bound", **HOST_OBJECTS_ONLY)
    name = manifests.node_reader_binding_name(
        manifests.host_namespace_name(installation.current().token, vcluster.pk, "alpha", "bound"))
    rbac = client.RbacAuthorizationV1Api(runtime_host.cluster.api_client())
    theirs = {"kind": "User", "name": "someone", "apiGroup": "rbac.authorization.k8s.io"}
    rbac.create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [theirs],
    })
    foreign_objects.append(("ClusterRoleBinding", name))

    pipeline.provision(vcluster.pk)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.FAILED
    assert f"ClusterRoleBinding {name} already exists and has no app.kubernetes.io/managed-by" in vcluster.message
    binding = rbac.read_cluster_role_binding(name)
    assert (binding.role_ref.name, [s.name for s in binding.subjects]) == ("view", ["someone"])

    _teardown(vcluster)
    assert rbac.read_cluster_role_binding(name).role_ref.name == "view"


# Object counts and ephemeral storage --------------------------------------------
@pytest.fixture
def as_syncer(runtime_host):
    """A client for a vcluster's host namespace with its syncer's own credentials."""

    def connect(vcluster) -> client.CoreV1Api:
        admin = HostKube(runtime_host.cluster.admin_kubeconfig.read_text())
        server, ca_pem = admin.server()
        kubeconfig = token_kubeconfig(admin.api, server, ca_pem.encode(), vcluster.placement.host_namespace,
                                      manifests.SYNCER, seconds=600)
        return client.CoreV1Api(HostKube(kubeconfig).api)

    return connect


def _fill(create, limit: int, already: int = 0) -> ApiException:
    """Create objects until the quota refuses one; that must be the (limit+1)th."""
    for i in range(already, limit):
        create(i)
    with pytest.raises(ApiException) as refused:
        create(limit)
    return refused.value


def _quota_ready(core, ns):
    eventually(lambda: core.read_namespaced_resource_quota("vcluster", ns).status.hard, what="quota status")


def test_the_syncer_cannot_create_more_objects_than_the_quota_counts(provisioned, core, as_syncer):
    vcluster = _host_objects_of(provisioned, "counted", None, pods=2)
    ns = vcluster.placement.host_namespace
    _quota_ready(core, ns)
    syncer = as_syncer(vcluster)
    # Room for the vcluster's CoreDNS, and for the control plane's pod where it runs in the namespace.
    beside = manifests.add_shares(manifests.CLUSTER_DNS_SHARE, pipeline.Context(vcluster).runtime.quota_share())
    counts = manifests.object_counts(2 + beside["pods"])

    def service(i, kind="ClusterIP"):
        return syncer.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name=f"s{i}"),
            spec=client.V1ServiceSpec(type=kind, ports=[client.V1ServicePort(port=80)])))

    refused = _fill(service, int(counts["count/services"]))
    assert refused.status == 403 and "exceeded quota" in refused.body and "count/services" in refused.body

    def config_map(i):
        syncer.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}")))

    # kube-root-ca.crt, published into every namespace, counts too.
    eventually(lambda: core.read_namespaced_resource_quota("vcluster", ns).status.used.get("count/configmaps") == "1",
               what="kube-root-ca.crt counted")
    refused = _fill(config_map, int(counts["count/configmaps"]), already=1)
    assert refused.status == 403 and "count/configmaps" in refused.body

    def endpoints(i):
        syncer.create_namespaced_endpoints(ns, client.V1Endpoints(metadata=client.V1ObjectMeta(name=f"e{i}")))

    refused = _fill(endpoints, int(counts["count/endpoints"]))
    assert refused.status == 403 and "count/endpoints" in refused.body


def test_no_load_balancers_and_ephemeral_storage_is_capped_and_defaulted(provisioned, core, as_syncer):
    vcluster = _host_objects_of(provisioned, "disk", None, pods=2)
    ns = vcluster.placement.host_namespace
    _quota_ready(core, ns)
    syncer = as_syncer(vcluster)

    with pytest.raises(ApiException) as lb:
        syncer.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="lb"),
            spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=80)])))
    assert lb.value.status == 403 and "services.loadbalancers" in lb.value.body

    big = pod("big")
    big.spec.containers[0].resources = client.V1ResourceRequirements(
        requests={"ephemeral-storage": "64Gi"}, limits={"ephemeral-storage": "64Gi"})  # 1Gi a pod the quota counts
    with pytest.raises(ApiException) as over:
        syncer.create_namespaced_pod(ns, big)
    assert over.value.status == 403 and "ephemeral-storage" in over.value.body

    created = syncer.create_namespaced_pod(ns, pod("plain"))  # no request: the LimitRange fills one in
    resources = created.spec.containers[0].resources
    assert (resources.requests["ephemeral-storage"], resources.limits["ephemeral-storage"]) == ("64Mi", "512Mi")


def test_a_tenant_namespace_name_is_valid_on_the_host_however_long_the_names(provisioned, core):
    team = make_team("t" * 50)
    vcluster = _host_objects_of(provisioned, "v" * 40, team)
    assert core.read_namespace(vcluster.placement.host_namespace).metadata.labels[manifests.TEAM_LABEL] == "t" * 50
