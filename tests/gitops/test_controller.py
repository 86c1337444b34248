"""The GitOps controller against a real management cluster (the session's host
cluster), with kubectl; provisioning and teardown run for real, in this process
(eager tasks) here and in a Celery worker with beat in test_end_to_end."""

import base64

import pytest

from accounts.audit import Actor
from accounts.models import AuditEvent
from gitops import controller, crd
from gitops.models import VirtualClusterBinding
from localkube.testing import kubectl
from provisioning import pipeline
from vclusters import services
from vclusters.models import Phase, VCluster

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile(settings):
    controller.reconcile(settings.VCPORTAL_GITOPS_CLUSTER)


def test_the_api_server_refuses_a_name_the_portal_would_refuse(management, settings):
    reconcile(settings)  # installs the CRD
    ns = management.namespace()
    refused = management.apply("x" * 41, ns)
    assert refused.returncode != 0 and "metadata.name is the vcluster's name" in refused.stderr
    assert management.apply("Demo", ns).returncode != 0


def test_refusals_are_written_to_status_and_create_nothing(management, settings, world):
    reconcile(settings)
    unmapped = management.namespace()
    assert management.apply("demo", unmapped).returncode == 0
    no_team = management.namespace(team="no-such-team")
    management.apply("demo", no_team)
    mapped = management.namespace(team="alpha")
    management.apply("bad-spec", mapped, cpu="lots", kubernetesVersion="v0.1.0")

    reconcile(settings)

    obj = management.get("demo", unmapped)
    assert obj["status"]["phase"] == "Refused"
    ready = management.conditions("demo", unmapped)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotMapped")
    assert f"kubectl label namespace {unmapped} vcportal.io/team=<team slug>" in ready["message"]
    assert "no team no-such-team" in management.conditions("demo", no_team)["Ready"]["message"]
    invalid = management.conditions("bad-spec", mapped)
    assert (invalid["Ready"]["reason"], invalid["SpecAccepted"]["reason"]) == ("Invalid", "Invalid")
    assert "spec.cpu: " in invalid["SpecAccepted"]["message"]
    assert "spec.kubernetesVersion: \"v0.1.0\" is not supported" in invalid["SpecAccepted"]["message"]
    # A refused object holds nothing: no finalizer, so deleting it never waits.
    assert "finalizers" not in obj["metadata"]
    assert not VCluster.objects.exists() and not AuditEvent.objects.filter(action="vcluster.create").exists()

    management.map(unmapped, "beta")  # the platform admin maps it: the next pass creates
    reconcile(settings)
    assert VCluster.objects.get().team == world.beta
    assert management.get("demo", unmapped)["status"]["phase"] in {"Pending", "Provisioning", "Ready"}


def test_quota_retry_ready_immutable_fields_and_a_portal_side_delete(management, settings, world, tmp_path):
    world.alpha.max_vclusters = 0
    world.alpha.save()
    reconcile(settings)
    ns = management.namespace(team="alpha")
    management.apply("demo", ns, cpu="1", memory="2Gi")

    reconcile(settings)
    quota = management.conditions("demo", ns)["Ready"]
    assert (quota["status"], quota["reason"]) == ("False", "QuotaExceeded")
    assert quota["message"] == "Quota max_vclusters exhausted: Alpha has 0 of 0 vclusters."
    assert not VCluster.objects.exists()

    world.alpha.max_vclusters = 3
    world.alpha.save()
    reconcile(settings)  # created; provisioning runs at commit (eager tasks)
    reconcile(settings)

    obj = management.get("demo", ns)
    vcluster = VCluster.objects.get(team=world.alpha, name="demo")
    assert vcluster.phase == Phase.READY
    status = obj["status"]
    assert (status["phase"], status["stepsDone"], status["stepsTotal"]) == ("Ready", len(pipeline.PROVISION), len(pipeline.PROVISION))
    assert status["vclusterId"] == vcluster.pk and status["kubeconfigSecretRef"] == {"name": "demo-kubeconfig"}
    assert management.conditions("demo", ns)["Ready"]["status"] == "True"
    assert obj["metadata"]["finalizers"] == [crd.FINALIZER]
    audit = AuditEvent.objects.get(action="vcluster.create")
    assert audit.actor_username == f"gitops:{ns}/demo" and audit.team == world.alpha

    secret = management.kube.core.read_namespaced_secret("demo-kubeconfig", ns)
    assert [(r.kind, r.uid) for r in secret.metadata.owner_references] == [("VirtualCluster", obj["metadata"]["uid"])]
    path = tmp_path / "demo.kubeconfig"
    path.write_bytes(base64.b64decode(secret.data["config"]))
    assert "namespace/default" in kubectl(path, "get", "namespaces", "-o", "name").stdout

    management.apply("demo", ns, cpu="2", memory="2Gi")
    reconcile(settings)
    conditions = management.conditions("demo", ns)
    assert (conditions["SpecAccepted"]["status"], conditions["SpecAccepted"]["reason"]) == ("False", "ImmutableField")
    assert "spec.cpu cannot change after creation" in conditions["SpecAccepted"]["message"]
    assert conditions["Ready"]["status"] == "True"
    assert VCluster.objects.get(pk=vcluster.pk).cpu_millicores == 1000

    services.delete_vcluster(Actor(world.teammate), vcluster)  # in the portal; torn down at commit
    reconcile(settings)
    reconcile(settings)
    status = management.get("demo", ns)["status"]
    assert status["phase"] == "Deleted"
    assert management.conditions("demo", ns)["Ready"]["reason"] == "DeletedInPortal"
    assert "kubeconfigSecretRef" not in status
    assert not management.kube.exists("v1", "Secret", "demo-kubeconfig", ns)
    assert VCluster.objects.filter(team=world.alpha, name="demo").count() == 1  # not recreated

    management.kubectl("delete", f"{crd.PLURAL}.{crd.GROUP}", "demo", "-n", ns, "--wait=false")
    reconcile(settings)
    assert management.get("demo", ns) is None
    assert not VirtualClusterBinding.objects.exists()


def test_a_foreign_secret_is_left_alone_and_an_owner_gone_by_hand_is_torn_down(management, settings, world):
    reconcile(settings)
    ns = management.namespace(team="alpha")
    management.kubectl("create", "secret", "generic", "other-kubeconfig", "-n", ns, "--from-literal=config=mine")
    management.apply("other", ns)

    reconcile(settings)  # created, and Ready once provisioning ran at commit
    reconcile(settings)
    ready = management.conditions("other", ns)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "SecretConflict")
    secret = management.kube.core.read_namespaced_secret("other-kubeconfig", ns)
    assert base64.b64decode(secret.data["config"]) == b"mine" and not secret.metadata.owner_references

    # Someone strips the finalizer and deletes the object: the portal still tears down.
    vcluster = VCluster.objects.get(team=world.alpha, name="other")
    management.kubectl("patch", f"{crd.PLURAL}.{crd.GROUP}", "other", "-n", ns, "--type=merge",
                       "-p", '{"metadata":{"finalizers":null}}')
    management.kubectl("delete", f"{crd.PLURAL}.{crd.GROUP}", "other", "-n", ns)
    reconcile(settings)
    vcluster.refresh_from_db()
    assert vcluster.phase == Phase.DELETED
    assert AuditEvent.objects.get(action="vcluster.delete").actor_username == f"gitops:{ns}/other"
    reconcile(settings)
    assert not VirtualClusterBinding.objects.exists()
    assert management.kube.exists("v1", "Secret", "other-kubeconfig", ns)


def test_a_teardown_that_gave_up_waits_for_a_person_and_the_finalizer_stays(management, settings, world, host):
    """DeleteFailed is reported, not retried behind the team's back: the finalizer
    holds the object until someone retries the teardown in the portal."""
    host.enabled = False  # provisioning fails at once (no host open to the team): no control plane to wait for
    host.save()
    reconcile(settings)
    ns = management.namespace(team="alpha")
    management.apply("stuck", ns)
    reconcile(settings)  # created, and Failed at commit
    reconcile(settings)  # status and finalizer
    vcluster = VCluster.objects.get(team=world.alpha, name="stuck")
    assert vcluster.phase == Phase.FAILED
    # As a teardown that kept failing leaves it (tests/provisioning/contract/test_teardown_failure.py).
    VCluster.objects.filter(pk=vcluster.pk).update(phase=Phase.DELETE_FAILED, message="Gave up after repeated errors: x")

    management.kubectl("delete", f"{crd.PLURAL}.{crd.GROUP}", "stuck", "-n", ns, "--wait=false")
    reconcile(settings)
    reconcile(settings)
    assert VCluster.objects.get(pk=vcluster.pk).phase == Phase.DELETE_FAILED
    obj = management.get("stuck", ns)
    assert obj["metadata"]["finalizers"] == [crd.FINALIZER] and obj["status"]["phase"] == "DeleteFailed"
    ready = management.conditions("stuck", ns)["Ready"]
    assert (ready["reason"], ready["message"]) == ("DeleteFailed", "Gave up after repeated errors: x")
    assert obj["status"]["stepsTotal"] == len(pipeline.TEARDOWN)

    services.retry_vcluster(Actor(world.teammate), VCluster.objects.get(pk=vcluster.pk))  # torn down at commit
    assert VCluster.objects.get(pk=vcluster.pk).phase == Phase.DELETED
    reconcile(settings)
    assert management.get("stuck", ns) is None
    assert not VirtualClusterBinding.objects.exists()
