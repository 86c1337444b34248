"""Building a VirtualCluster's status: pure functions, no cluster."""

from gitops import status

NOW, LATER = "2026-11-27T10:00:00Z", "2026-11-27T10:05:00Z"
CREATED = {"cpu_millicores": 1000, "memory_bytes": 2 * 2**30, "storage_bytes": 10 * 2**30, "pods": 50}


def _conditions(built: dict) -> dict:
    return {c["type"]: c for c in built["conditions"]}


def test_it_maps_spec_fields_to_the_service_s_arguments():
    spec = {"kubernetesVersion": "v1.37.2", "cpu": "2", "memory": "4Gi", "colour": "blue"}
    assert status.service_fields(spec) == {"kubernetes_version": "v1.37.2", "cpu": "2", "memory": "4Gi",
                                           "colour": "blue"}
    assert status.service_fields(None) == {}


def test_an_unchanged_or_equivalent_spec_has_no_immutable_changes():
    spec = {"kubernetesVersion": "v1.37.2", "cpu": "1000m", "memory": "2048Mi", "pods": 50}
    assert status.immutable_changes(spec, "v1.37.2", CREATED) == []
    assert status.immutable_changes({}, "v1.37.2", CREATED) == []


def test_changed_version_and_resources_are_named_with_both_values():
    problems = status.immutable_changes({"kubernetesVersion": "v1.38.0", "cpu": 2}, "v1.37.2", CREATED)
    assert problems == [
        "spec.kubernetesVersion cannot change after creation: the vcluster runs v1.37.2, the spec asks for v1.38.0.",
        "spec.cpu cannot change after creation: the vcluster has 1, the spec asks for 2.",
    ]
    assert status.immutable_changes({"memory": "lots"}, "v1.37.2", CREATED)[0].startswith("spec.memory: ")


def test_a_ready_vcluster_names_its_secret_and_accepts_its_spec():
    observed = status.of_vcluster(7, "Ready", "", (7, 7), "demo-kubeconfig", [])
    built = status.build(observed, 3, None, NOW)
    assert built["phase"] == "Ready" and built["observedGeneration"] == 3
    assert built["kubeconfigSecretRef"] == {"name": "demo-kubeconfig"}
    assert (built["stepsDone"], built["stepsTotal"], built["vclusterId"]) == (7, 7, 7)
    ready, accepted = _conditions(built)["Ready"], _conditions(built)["SpecAccepted"]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("True", "Ready", NOW)
    assert ready["observedGeneration"] == 3
    assert accepted["status"] == "True"
    assert built["message"] == "The vcluster is ready; its kubeconfig is in Secret demo-kubeconfig."


def test_an_immutable_change_is_refused_while_the_vcluster_stays_ready():
    observed = status.of_vcluster(7, "Ready", "", (7, 7), "demo-kubeconfig", ["spec.cpu cannot change …"])
    built = status.build(observed, 2, None, NOW)
    accepted = _conditions(built)["SpecAccepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "ImmutableField")
    assert _conditions(built)["Ready"]["status"] == "True"
    assert built["message"] == "spec.cpu cannot change …"


def test_a_refusal_has_no_vcluster_fields():
    built = status.build(status.refusal("QuotaExceeded", "Quota max_vclusters exhausted."), 1, None, NOW)
    assert built == {
        "phase": "Refused", "message": "Quota max_vclusters exhausted.", "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "False", "reason": "QuotaExceeded",
                        "message": "Quota max_vclusters exhausted.", "lastTransitionTime": NOW,
                        "observedGeneration": 1}],
    }
    invalid = status.build(status.refusal("Invalid", "spec.cpu: bad", spec_invalid=True), 1, None, NOW)
    assert _conditions(invalid)["SpecAccepted"]["reason"] == "Invalid"


def test_progress_and_portal_side_deletion_say_what_is_going_on():
    provisioning = status.build(status.of_vcluster(7, "Provisioning", "Control plane (4 of 7 steps done).",
                                                   (4, 7), "", []), 1, None, NOW)
    assert _conditions(provisioning)["Ready"]["reason"] == "Provisioning"
    assert provisioning["message"] == "Control plane (4 of 7 steps done)."
    assert "kubeconfigSecretRef" not in provisioning
    deleted = status.build(status.of_vcluster(7, "Deleted", "", (5, 5), "demo-kubeconfig", []), 1, None, NOW)
    assert _conditions(deleted)["Ready"]["reason"] == "DeletedInPortal"
    assert "not recreated" in deleted["message"] and "kubeconfigSecretRef" not in deleted


def test_a_secret_that_is_not_ours_keeps_the_vcluster_from_being_reported_ready():
    observed = status.of_vcluster(7, "Ready", "", (7, 7), "demo-kubeconfig", [], secret_error="Secret … not ours")
    built = status.build(observed, 1, None, NOW)
    assert _conditions(built)["Ready"]["reason"] == "SecretConflict"
    assert "kubeconfigSecretRef" not in built


def test_transition_times_change_only_with_the_condition_s_status():
    pending = status.build(status.of_vcluster(7, "Pending", "", (0, 7), "", []), 1, None, NOW)
    still_pending = status.build(status.of_vcluster(7, "Provisioning", "", (3, 7), "", []), 1, pending, LATER)
    assert _conditions(still_pending)["Ready"]["lastTransitionTime"] == NOW
    ready = status.build(status.of_vcluster(7, "Ready", "", (7, 7), "s", []), 1, still_pending, LATER)
    assert _conditions(ready)["Ready"]["lastTransitionTime"] == LATER
    assert _conditions(ready)["SpecAccepted"]["lastTransitionTime"] == NOW


def test_the_same_facts_build_the_same_status():
    observed = status.of_vcluster(7, "Ready", "", (7, 7), "s", [])
    first = status.build(observed, 1, None, NOW)
    assert status.build(observed, 1, first, LATER) == first
